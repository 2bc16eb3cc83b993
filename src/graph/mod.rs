//! The graph executor: models as data ([`model`]) compiled once into plans ([`plan`]).

pub mod model;
pub mod plan;
