"""Side-by-side benchmarks: linkmq+ against kombu's sqla+ (and Redis when reachable)."""
