"""Planning: users in, validated, de-duplicated and packed into chunks out. No network."""
