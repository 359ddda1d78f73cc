//! Empty: this package exists to hold the integration tests in `tests/`.
