"""The public Python API: Network, Trainer and fit's controls, optimizers' and schedules' objects, History,
checkpoints, datasets, progress, summary and gradcheck, as a user calls them."""
