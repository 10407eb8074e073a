"""What the tests share: servers standing in for the world (stub DNS, receiving MX, Postfix),
fixtures, and helpers that drive the daemon. Test modules import from here, never from each
other."""
