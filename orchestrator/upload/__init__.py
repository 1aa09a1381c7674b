"""The async engine: every chunk of a run submitted, polled to its end, its errors fetched."""
