//! tidings: a multilingual mailing-list digest and syndication daemon.
//!
//! Mail comes in through [`ingest`], is filed per language ([`lang`]) into
//! the [`store`], and goes out as feeds, digests and pages. [`config`] reads
//! lists.toml; [`cli`] is the command line.

pub mod cli;
pub mod config;
pub mod ingest;
pub mod lang;
pub mod store;
