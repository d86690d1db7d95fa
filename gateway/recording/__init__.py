"""Call recordings: a two-channel WAV per call (RECORDINGS_DIR), written off the audio path."""
