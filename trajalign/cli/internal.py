"""``trajalign internal`` (registered here; see issue 4)."""
