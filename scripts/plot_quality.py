#!/usr/bin/env python3
"""Draws validation loss against wall-clock minutes for several training runs as one SVG.

Each run is LABEL=FILE: a charlm metrics.csv (columns elapsed_s and val_loss) or the CSV of
scripts/pytorch_train_reference.py (elapsed_s, step, train_loss, val_loss). LABEL=F1,F2,F3
draws the mean of several seeds, the k-th validation of each averaged (time and loss), with
the band between the lowest and the highest drawn faintly.

Usage: python3 scripts/plot_quality.py -o docs/quality.svg "PyTorch=pt1.csv,pt2.csv" "charlm=runs/x/metrics.csv"
"""
import argparse
import csv

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def read(path):
    points = []
    with open(path) as f:
        for row in csv.DictReader(f):
            v = row.get("val_loss")
            if v:
                points.append((float(row["elapsed_s"]) / 60, float(v)))
    return points


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--title", default="Validation loss on tinyshakespeare (2-core CPU)")
    p.add_argument("--ymax", type=float, default=2.0)
    a = p.parse_args()
    series, bands = [], []
    for label, paths in (r.split("=", 1) for r in a.runs):
        runs = [read(path) for path in paths.split(",")]
        n = min(len(r) for r in runs)
        mean = lambda i, j: sum(r[i][j] for r in runs) / len(runs)
        series.append((f"{label}, mean of {len(runs)}" if len(runs) > 1 else label,
                       [(mean(i, 0), mean(i, 1)) for i in range(n)]))
        bands.append([(mean(i, 0), min(r[i][1] for r in runs), max(r[i][1] for r in runs)) for i in range(n)]
                     if len(runs) > 1 else None)
    W, H, L, R, T, B = 760, 460, 70, 20, 40, 55
    xmax = max(x for _, pts in series for x, _ in pts)
    ymin = min(y for _, pts in series for _, y in pts) - 0.05
    ymax = a.ymax
    px = lambda x: L + x / xmax * (W - L - R)
    py = lambda y: T + (ymax - min(y, ymax)) / (ymax - ymin) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{a.title}</text>']
    for i in range(6):
        y = ymin + (ymax - ymin) * i / 5
        out.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W - R}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        x = xmax * i / 5
        out.append(f'<text x="{px(x):.1f}" y="{H - B + 18}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>')
    out.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">wall-clock minutes (validation included)</text>')
    out.append(f'<text transform="translate(18,{(T + H - B) / 2}) rotate(-90)" text-anchor="middle">validation loss (nats per character)</text>')
    for n, (label, pts) in enumerate(series):
        color = COLORS[n % len(COLORS)]
        if bands[n]:
            edge = [(x, hi) for x, _, hi in bands[n]] + [(x, lo) for x, lo, _ in reversed(bands[n])]
            d = " ".join(f'{"M" if i == 0 else "L"}{px(x):.1f},{py(y):.1f}' for i, (x, y) in enumerate(edge))
            out.append(f'<path d="{d} Z" fill="{color}" fill-opacity="0.15" stroke="none"/>')
        d = " ".join(f'{"M" if i == 0 else "L"}{px(x):.1f},{py(y):.1f}' for i, (x, y) in enumerate(pts))
        out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        best = min(y for _, y in pts)
        ly = T + 14 + 18 * n
        out.append(f'<line x1="{W - R - 330}" y1="{ly - 4}" x2="{W - R - 305}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{W - R - 298}" y="{ly}">{label} (best {best:.3f})</text>')
    out.append("</svg>")
    open(a.output, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
