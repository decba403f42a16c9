"""The gateway's tables and the pure logic around them: profiles, rate windows, remembered outcomes."""
