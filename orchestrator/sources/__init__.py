"""What the tool can read: user exports streamed into decoded records, never loaded whole."""
