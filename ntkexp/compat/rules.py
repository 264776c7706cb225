def register(*a): pass
