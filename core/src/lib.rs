//! elevate-core: the part of elevate that decides.
//!
//! Everything here is pure: the domain types (validated newtypes), the policy model and its
//! evaluation, the request lifecycle, the service that turns commands into state changes, the
//! work the scheduler runs, and the audit chain. Talking to the outside world (a database, a cloud
//! provider, a chat platform, the clock) goes through the port traits in [`ports`], implemented by
//! the adapter crates. Adapters translate; core decides.

pub mod audit;
pub mod chat;
pub mod delivery;
pub mod duration;
pub mod error;
pub mod explain;
pub mod ids;
pub mod lifecycle;
pub mod oncall;
pub mod policy;
pub mod ports;
pub mod reason;
pub mod render;
pub mod report;
pub mod request;
pub mod schedule;
pub mod scrub;
pub mod service;
pub mod threshold;
pub mod tickets;
pub mod time;
pub mod visible;

pub use duration::GrantDuration;
pub use error::{CoreError, Field, UserError};
pub use ids::{BatchId, GroupName, PersonId, RequestId, RoleName};
pub use lifecycle::{EndReason, State};
pub use policy::Policy;
pub use reason::Reason;
pub use request::{Request, RequestKind};
pub use service::Service;
pub use threshold::Threshold;
pub use time::{Clock, ManualClock, SystemClock};
