//! Where the SDK's host calls go: inside a component, the host's imports;
//! natively (a plugin's unit tests), the fake host a test installed with
//! [`testing::FakeHost`](crate::testing::FakeHost). The wrappers in
//! [`containers`](crate::containers) and [`log`](crate::log) call only these,
//! so a plugin's `handle` runs whole under `cargo test`.

pub(crate) use imp::*;

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings;
    use crate::bindings::autoheal::plugin::containers as wit;
    use crate::containers::{ContainerError, ContainerInfo, ExecOutput, LogTail};

    pub(crate) fn inspect(name: &str) -> Result<ContainerInfo, ContainerError> {
        Ok(wit::inspect(name)?.into())
    }

    pub(crate) fn restart(name: &str) -> Result<(), ContainerError> {
        Ok(wit::restart(name)?)
    }

    pub(crate) fn signal(name: &str, signal: &str) -> Result<(), ContainerError> {
        Ok(wit::signal(name, signal)?)
    }

    pub(crate) fn exec(name: &str, argv: &[String]) -> Result<ExecOutput, ContainerError> {
        Ok(wit::exec(name, argv)?.into())
    }

    pub(crate) fn logs(name: &str, tail: u32) -> Result<LogTail, ContainerError> {
        Ok(wit::logs(name, tail)?.into())
    }

    pub(crate) fn list_by_label(selector: &str) -> Result<Vec<String>, ContainerError> {
        Ok(wit::list_by_label(selector)?)
    }

    pub(crate) fn log(level: &str, message: &str) {
        bindings::log(level, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::containers::{ContainerError, ContainerInfo, ExecOutput, LogTail};
    use crate::testing::fake::with_installed;

    pub(crate) fn inspect(name: &str) -> Result<ContainerInfo, ContainerError> {
        with_installed("inspect", |host| host.inspect(name))
    }

    pub(crate) fn restart(name: &str) -> Result<(), ContainerError> {
        with_installed("restart", |host| host.restart(name))
    }

    pub(crate) fn signal(name: &str, signal: &str) -> Result<(), ContainerError> {
        with_installed("signal", |host| host.signal(name, signal))
    }

    pub(crate) fn exec(name: &str, argv: &[String]) -> Result<ExecOutput, ContainerError> {
        with_installed("exec", |host| host.exec(name, argv))
    }

    pub(crate) fn logs(name: &str, tail: u32) -> Result<LogTail, ContainerError> {
        with_installed("logs", |host| host.logs(name, tail))
    }

    pub(crate) fn list_by_label(selector: &str) -> Result<Vec<String>, ContainerError> {
        with_installed("list_by_label", |host| host.list_by_label(selector))
    }

    pub(crate) fn log(level: &str, message: &str) {
        with_installed(level, |host| host.log(level, message));
    }
}
