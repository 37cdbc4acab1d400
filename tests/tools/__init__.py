"""Development tools: synthetic deliveries for benchmarks, load tests and the test suite."""
