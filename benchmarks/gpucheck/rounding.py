"""How a measured number is written into the GPU check's JSON: four significant digits, since a timing
on a shared or freshly started machine carries no more."""


def rounded(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")
