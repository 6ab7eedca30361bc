//! A payment simulator: synthetic CRM payment metrics for a real Prometheus to scrape.
//!
//! It exports `crm_payments_total{outcome="success"|"failure"}` (the SLI of the payment-rate
//! SLO, objective 99.5 %) and can be switched between [`Mode::Steady`], [`Mode::Dip`] (a rising
//! failure ratio) and [`Mode::Recovery`], so anyone can watch the SLO runway
//! (`slo:payment_rate:hours_to_breach`) shrink and recover. See `docs/vision.md` for the numbers.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use payment_sim::{Mode, Settings, Simulator};
//! let sim = Simulator::new(Settings::default(), Mode::Steady);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9105").await?;
//! let handle = tokio::spawn(payment_sim::serve(listener, sim.clone(), std::future::pending()));
//! sim.set_mode(Mode::Dip);
//! # drop(handle);
//! # Ok(())
//! # }
//! ```

pub mod client;
mod duration;
mod http;
mod model;

pub use client::{Client, ClientError, DEFAULT_URL};
pub use duration::{ParseDurationError, parse_duration};
pub use http::{METRICS_CONTENT_TYPE, router, serve};
pub use model::{Mode, ParseModeError, Settings, SettingsError, Simulator, Status};
