"""First-party local training backends on the Lightning engine."""
