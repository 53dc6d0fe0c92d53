"""The virtual waiting room: who waits, in which order, and what each may see."""
