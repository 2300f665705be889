"""What tests share besides fixtures: helpers, and the servers and clocks some tests run."""
