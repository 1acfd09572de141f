"""Video matting: streaming frames in chunks, sub-pixel motion, temporal stability with scene cuts, batches of a long
video over several runs, and temporal measures."""
