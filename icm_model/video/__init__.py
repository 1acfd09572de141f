"""Video matting: streaming frames in chunks, temporal stability, and temporal measures."""
