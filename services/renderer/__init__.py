"""renderer: consumes render jobs, renders the animation and its assets, hands them to the pin stage."""
