"""Rated image datasets for NIMA: readers, 10-bucket targets, group splits and the torch Dataset."""

from nima.data.images import ImageRatings, load_image, resize
from nima.data.pairs import read_pairs
from nima.data.readers import (
    Ratings, Sample, open_dataset, read_ava, read_clive, read_csv, read_koniq, read_tid2013,
)
from nima.data.split import load_split, save_split, split_groups
from nima.data.targets import Scale, gaussian_buckets, std_to_unit, to_unit, votes_to_buckets

__all__ = [
    "ImageRatings", "Ratings", "Sample", "Scale", "gaussian_buckets", "load_image", "load_split",
    "open_dataset", "read_ava", "read_clive", "read_csv", "read_koniq", "read_pairs", "read_tid2013", "resize",
    "save_split", "split_groups", "std_to_unit", "to_unit", "votes_to_buckets",
]
