"""``trajalign rotate`` (registered here; see issue 3)."""
