//! # ln-sim: a simulator of Infor LN's OData API behind the ION API gateway
//!
//! Implements the `lnsync` service contract of `docs/ln-api.md` / `docs/ln-api.openapi.yaml` with
//! state, etags, OData errors, paging, throttling and a request log, for lnsync's tests and demo.
//! Use it as a library (start on an ephemeral port, drive it through [`LnSim`]) or as the
//! `ln-sim` binary (see `docs/ln-simulator.md`).
//!
//! Module map:
//!
//! - [`server`]: [`SimConfig`], the [`LnSim`] handle, router, token endpoint, and the middleware
//!   that logs requests and applies injected faults.
//! - [`odata`]: resource paths, auth/company checks, the OData read and write handlers.
//! - [`query`]: `$filter`/`$orderby`/`$top`/`$select`/`$expand`/`$count` and keyset paging.
//! - [`filter`]: the `$filter` lexer, parser and evaluator.
//! - [`schema`]: entity sets and their typed properties.
//! - [`model`]: the LN entities (contacts, activities, attendees, …) with their JSON names.
//! - [`store`]: the in-memory company data, etags, `lastModified`, `DeletedObjects`, change events.
//! - [`auth`]: credentials, password-grant tokens, `.ionapi` files.
//! - [`faults`]: throttle/error/delay rules.
//! - [`log`]: the request log.
//! - [`webhook`]: the LN push webhook: signed POSTs of activity and attendee changes, with
//!   retries and a delivery log.
//! - [`clock`]: [`SimClock`], the controllable server clock.
//! - [`seed`]: the seed format; [`demo`]: deterministic demo data.
//! - `admin` (private): the `/_sim/` HTTP admin API.
//! - [`error`]: [`SimError`] and the OData error response.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ln_sim::SimError> {
//! use ln_sim::{LnSim, SimConfig, demo_seed};
//! let sim = LnSim::start(SimConfig::default().with_seed(demo_seed("100", 3, 20))).await?;
//! println!("{}", sim.service_root());
//! let ionapi = sim.ionapi(); // hand this to the client under test
//! # let _ = ionapi; Ok(()) }
//! ```

mod admin;
pub mod auth;
pub mod clock;
pub mod demo;
pub mod error;
pub mod faults;
pub mod filter;
pub mod log;
pub mod model;
pub mod odata;
pub mod query;
pub mod schema;
pub mod seed;
pub mod server;
pub mod store;
pub mod webhook;

pub use auth::{Credentials, IonApiFile};
pub use clock::SimClock;
pub use demo::{demo_contact, demo_seed};
pub use error::{ODataError, SimError};
pub use faults::{FaultAction, FaultRule};
pub use log::{RequestKind, RequestRecord};
pub use seed::{CompanySeed, Seed, SeedActivity, SeedContact};
pub use server::{LnSim, SimConfig};
pub use store::{ChangeEvent, ChangeKind, IfMatch, NewActivity, Store, StoreError};
pub use webhook::{DeliveryOutcome, WebhookDelivery, WebhookRetry, WebhookStatus};
