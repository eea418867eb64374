//! The `/echo/1.0.0` service of a [`RustNode`](crate::RustNode).

use crate::{exercise, stream_service};
use futures::FutureExt;

/// The protocol ID the echo service answers to.
pub const ECHO_PROTOCOL: &str = "/echo/1.0.0";

/// Accepts `/echo/1.0.0` streams on every connection and echoes them.
pub(crate) fn behaviour() -> stream_service::Behaviour {
    stream_service::Behaviour::new(ECHO_PROTOCOL, |stream| {
        exercise::echo(stream).map(|r| r.map(drop)).boxed()
    })
}
