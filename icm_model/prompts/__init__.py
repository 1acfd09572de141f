"""Reference prompts: how the user's marks on the reference become the RoI tokens of the in-context query."""
