"""One reference prompt: any mix of a mask, points, scribbles and boxes, in pixels of the marked image."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Point:
    """A click at pixel ``(x, y)``; ``positive`` False marks something that is not the object."""

    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True)
class Scribble:
    """A polyline through ``points`` (pixel ``(x, y)`` vertices) drawn ``width`` pixels wide."""

    points: tuple[tuple[float, float], ...]
    width: float
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """A box with top-left corner ``(x, y)`` and size ``width x height`` in pixels."""

    x: float
    y: float
    width: float
    height: float
    positive: bool = True


@dataclass
class ReferencePrompt:
    """What the user marked on one image of ``height x width`` pixels.

    Attributes:
        mask: optional positive mask ``[height, width]`` in [0, 1] (> 0.5 = the object).
        points, scribbles, boxes: the marks, positive and negative, in pixels of the image.
    """

    height: int
    width: int
    mask: torch.Tensor | None = None
    points: list[Point] = field(default_factory=list)
    scribbles: list[Scribble] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def has_marks(self) -> bool:
        return bool(self.points or self.scribbles or self.boxes)

    @property
    def has_positive(self) -> bool:
        """Whether anything marks the object (a mask with a pixel above 0.5, or a positive mark)."""
        marks = [*self.points, *self.scribbles, *self.boxes]
        return any(mark.positive for mark in marks) or (self.mask is not None and bool((self.mask > 0.5).any()))

    @property
    def has_sparse(self) -> bool:
        """Whether points or scribbles are marked: the marks the reference-prompt extension grows."""
        return bool(self.points or self.scribbles)

    def validate(self, name: str = "marks") -> None:
        """Raises ``ValueError`` naming ``name`` for marks outside the image, empty boxes and bad widths."""
        if self.height < 1 or self.width < 1:
            raise ValueError(f"{name}: the image must be at least 1x1 pixels, got {self.width}x{self.height}")
        if self.mask is not None and tuple(self.mask.shape) != (self.height, self.width):
            raise ValueError(
                f"mask is {self.mask.shape[-1]}x{self.mask.shape[-2]} but the image is {self.width}x{self.height}: "
                "give the mask of the marked image"
            )

        def check_inside(x: float, y: float, what: str) -> None:
            if not (0 <= x <= self.width and 0 <= y <= self.height):
                raise ValueError(
                    f"{name}: {what} at ({x:g}, {y:g}) lies outside the {self.width}x{self.height} image: "
                    "marks must be on the image they were drawn on"
                )

        for i, point in enumerate(self.points):
            check_inside(point.x, point.y, f"points[{i}]")
        for i, scribble in enumerate(self.scribbles):
            if not scribble.points:
                raise ValueError(f"{name}: scribbles[{i}] has no points")
            if not scribble.width > 0:
                raise ValueError(f"{name}: scribbles[{i}] has width {scribble.width:g}: give a width above 0 pixels")
            xs, ys = zip(*scribble.points, strict=True)
            if not (min(xs) >= 0 and max(xs) <= self.width and min(ys) >= 0 and max(ys) <= self.height):
                for x, y in scribble.points:
                    check_inside(x, y, f"scribbles[{i}]")
        for i, box in enumerate(self.boxes):
            if not (box.width > 0 and box.height > 0):
                raise ValueError(
                    f"{name}: boxes[{i}] has zero size ({box.width:g}x{box.height:g}): drag a box with a width and a "
                    "height"
                )
            check_inside(box.x, box.y, f"boxes[{i}]")
            check_inside(box.x + box.width, box.y + box.height, f"the corner of boxes[{i}]")

    def with_mask(self, mask: torch.Tensor | None) -> ReferencePrompt:
        """The same marks with ``mask`` ``[height, width]`` as the positive mask."""
        return ReferencePrompt(self.height, self.width, mask, list(self.points), list(self.scribbles), list(self.boxes))

    def merged(self, points: list[Point]) -> ReferencePrompt:
        """The same prompt with more points (e.g. from a Points Editor)."""
        return ReferencePrompt(
            self.height, self.width, self.mask, [*self.points, *points], list(self.scribbles), list(self.boxes)
        )
