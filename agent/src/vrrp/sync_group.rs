//! Sync groups: instances that change state together.
