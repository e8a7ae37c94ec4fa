//! Integration tests: the real binary's pieces over real sockets, fixtures generated in-process.

mod common;

mod bridge;
