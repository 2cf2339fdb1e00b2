//! tidings: a multilingual mailing-list digest and syndication daemon.
//!
//! Mail comes in through [`ingest`], is filed per language ([`lang`]) into
//! the [`store`], and goes out as feeds, digests and pages. [`config`] reads
//! lists.toml; [`cli`] is the command line.

pub mod auth;
pub mod bounce;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod descriptors;
pub mod digest;
pub mod feeds;
pub mod files;
pub mod health;
pub mod ingest;
pub mod lang;
pub mod memory;
pub mod metrics;
pub mod moderation;
pub mod nntp;
pub mod post;
pub mod search;
pub mod serve;
pub mod site;
pub mod store;
pub mod subscribe;
pub mod subscribers;
pub mod templates;
pub mod text;
pub mod tokens;
pub mod web;
