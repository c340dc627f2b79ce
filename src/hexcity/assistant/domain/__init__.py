"""Pure model and algorithms of the support assistant: no I/O, no infrastructure imports."""
