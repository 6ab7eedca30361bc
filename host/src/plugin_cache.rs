//! Where `autoheal plugin test|check|dev` keep compiled components: the same
//! authenticated artifact cache as the host (`autoheal_sandbox::ArtifactCache`),
//! so that a second run of an unchanged plugin loads in milliseconds instead
//! of compiling again (seconds for Python or JavaScript).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use autoheal::config::Config;
use autoheal_sandbox::CacheLocation;

/// The directory under the per-user cache home that holds the artifacts;
/// its key is the sibling file `components.key`, outside it.
const USER_CACHE: &str = "autoheal/components";

/// The cache for a CLI run, in this order: `--cache-dir DIR` (key `DIR.key`
/// beside it); the host config's `cache_dir` and key file when a config
/// file was given or `AUTOHEAL_CACHE_DIR` is set (the host's own cache, so
/// what the CLI compiles the host loads, and the other way round); else
/// the per-user default `$XDG_CACHE_HOME/autoheal/components`, or
/// `~/.cache/autoheal/components`. `None` when there is no home to put it in.
pub fn location(
    flag: Option<&Path>,
    config_file: Option<&Path>,
    config: &Config,
    env: impl Fn(&str) -> Option<OsString>,
) -> Option<CacheLocation> {
    if let Some(dir) = flag {
        return Some(CacheLocation::beside(dir));
    }
    if config_file.is_some() || env("AUTOHEAL_CACHE_DIR").is_some_and(|v| !v.is_empty()) {
        return Some(CacheLocation {
            dir: config.cache_dir.clone(),
            key_file: config.cache_key_file.clone(),
        });
    }
    // XDG: a relative value is to be ignored.
    let home = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".cache"))
        })?;
    Some(CacheLocation::beside(&home.join(USER_CACHE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn config() -> Config {
        autoheal::config::RawConfig::default().validate().unwrap()
    }

    #[test]
    fn the_flag_wins_and_keeps_its_key_beside_the_directory() {
        let at = location(
            Some(Path::new("/tmp/c")),
            Some(Path::new("host.toml")),
            &config(),
            env(&[("XDG_CACHE_HOME", "/x")]),
        )
        .unwrap();
        assert_eq!(at.dir, Path::new("/tmp/c"));
        assert_eq!(at.key_file, Path::new("/tmp/c.key"));
    }

    #[test]
    fn a_host_config_means_the_hosts_own_cache() {
        let config = config();
        let at = location(None, Some(Path::new("host.toml")), &config, env(&[])).unwrap();
        assert_eq!(at.dir, config.cache_dir);
        assert_eq!(at.key_file, config.cache_key_file);
        let by_env = location(None, None, &config, env(&[("AUTOHEAL_CACHE_DIR", "data/cache")])).unwrap();
        assert_eq!(by_env.dir, config.cache_dir);
    }

    #[test]
    fn otherwise_the_per_user_cache_with_its_key_outside_it() {
        let xdg = location(
            None,
            None,
            &config(),
            env(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/a")]),
        )
        .unwrap();
        assert_eq!(xdg.dir, Path::new("/xdg/autoheal/components"));
        assert_eq!(xdg.key_file, Path::new("/xdg/autoheal/components.key"));
        let relative_xdg = env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/a")]);
        let home = location(None, None, &config(), relative_xdg).unwrap();
        assert_eq!(home.dir, Path::new("/home/a/.cache/autoheal/components"));
        assert!(location(None, None, &config(), env(&[])).is_none());
    }
}
