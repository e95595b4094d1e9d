"""Model runners. `base` is the leaf every backend imports; `loading` opens a model folder and picks one."""
