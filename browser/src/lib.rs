//! `stewrd browser-host`: Chromium for agent runs, in a process of its own
//! (in production its own container) holding no database credentials and no
//! master keys, so that a page that breaks out of the browser finds none of
//! stewrd's secrets beside it. Workers ask it over HTTP, with a token, to
//! open a run's browser, act on it and close it; every request of every
//! browser goes through an egress proxy that checks the address connected to.

pub mod cdp;
pub mod chromium;
mod host;
pub mod page;
pub mod proxy;
pub mod snapshot;

pub use host::serve;
