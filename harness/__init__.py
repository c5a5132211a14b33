"""What tests and benchmarks share: drawings with known answers, a live app, its visitors."""
