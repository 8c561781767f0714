/**
 * Rasterises a chart scene (plot.ts) into RGB pixels for the PNG: lines as stamped discs,
 * text in a built-in 3×5 pixel font (capitals, digits and common punctuation) scaled to the size,
 * since there is no font renderer to lean on.
 */
import type { Prim, Scene } from './plot.js';

// Each glyph: 5 rows of 3 bits, top row first.
const GLYPHS: Record<string, string> = {
  '0': '111101101101111', '1': '010110010010111', '2': '111001111100111', '3': '111001111001111',
  '4': '101101111001001', '5': '111100111001111', '6': '111100111101111', '7': '111001001010010',
  '8': '111101111101111', '9': '111101111001111',
  A: '010101111101101', B: '110101110101110', C: '011100100100011', D: '110101101101110',
  E: '111100110100111', F: '111100110100100', G: '011100101101011', H: '101101111101101',
  I: '111010010010111', J: '001001001101010', K: '101101110101101', L: '100100100100111',
  M: '101111111101101', N: '110101101101101', O: '010101101101010', P: '110101110100100',
  Q: '010101101110011', R: '110101110101101', S: '011100010001110', T: '111010010010010',
  U: '101101101101111', V: '101101101101010', W: '101101111111101', X: '101101010101101',
  Y: '101101010010010', Z: '111001010100111',
  ' ': '000000000000000', '.': '000000000000010', ',': '000000000010100', '-': '000000111000000',
  '+': '000010111010000', '%': '101001010100101', '(': '010100100100010', ')': '010001001001010',
  '[': '110100100100110', ']': '011001001001011', ':': '000010000010000', ';': '000010000010100', '/': '001001010100100',
  _: '000000000000111', '=': '000111000111000', "'": '010010000000000', '?': '111001010000010',
  '>': '100010001010100', '<': '001010100010001', '#': '101111101111101', '*': '000101010101000',
  '|': '010010010010010', '@': '111101111100011',
};

const FALLBACK: Record<string, string> = { '–': '-', '—': '-', '−': '-', '×': 'X', '≥': '>', '≤': '<', '·': '.', '%': '%' };

function glyph(ch: string): string {
  const c = FALLBACK[ch] ?? ch.toUpperCase();
  return GLYPHS[c] ?? GLYPHS['?']!;
}

class Raster {
  readonly rgb: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.rgb = new Uint8Array(width * height * 3).fill(255);
  }

  set(x: number, y: number, c: readonly [number, number, number]): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    this.rgb[o] = c[0];
    this.rgb[o + 1] = c[1];
    this.rgb[o + 2] = c[2];
  }

  fillRect(x: number, y: number, w: number, h: number, c: readonly [number, number, number]): void {
    for (let j = Math.round(y); j < Math.round(y + h); j++) for (let i = Math.round(x); i < Math.round(x + w); i++) this.set(i, j, c);
  }

  disc(cx: number, cy: number, r: number, c: readonly [number, number, number]): void {
    const rr = r * r;
    for (let j = Math.floor(cy - r); j <= Math.ceil(cy + r); j++) {
      for (let i = Math.floor(cx - r); i <= Math.ceil(cx + r); i++) if ((i - cx) ** 2 + (j - cy) ** 2 <= rr) this.set(i, j, c);
    }
  }

  line(x1: number, y1: number, x2: number, y2: number, width: number, c: readonly [number, number, number]): void {
    const len = Math.hypot(x2 - x1, y2 - y1);
    const steps = Math.max(1, Math.ceil(len * 2));
    for (let s = 0; s <= steps; s++) {
      const x = x1 + ((x2 - x1) * s) / steps, y = y1 + ((y2 - y1) * s) / steps;
      if (width <= 1) this.set(x, y, c);
      else this.disc(x, y, width / 2, c);
    }
  }

  /** Text in the pixel font; `scale` pixels per font pixel; vertical text reads bottom to top. */
  text(x: number, y: number, s: string, scale: number, anchor: 'start' | 'middle' | 'end', c: readonly [number, number, number], vertical = false): void {
    const adv = 4 * scale;
    const w = s.length * adv - scale;
    const shift = anchor === 'start' ? 0 : anchor === 'middle' ? -w / 2 : -w;
    // (x, y) is the baseline position as in SVG: the glyphs sit 5 font pixels above it.
    [...s].forEach((ch, k) => {
      const g = glyph(ch);
      for (let row = 0; row < 5; row++) {
        for (let col = 0; col < 3; col++) {
          if (g[row * 3 + col] !== '1') continue;
          const u = shift + k * adv + col * scale, v = (row - 5) * scale;
          for (let a = 0; a < scale; a++) {
            for (let b = 0; b < scale; b++) {
              if (vertical) this.set(x + v + b, y - u - a, c);
              else this.set(x + u + a, y + v + b, c);
            }
          }
        }
      }
    });
  }
}

function rgbOf(hex: string): [number, number, number] {
  const h = hex.replace('#', '');
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
}

function draw(r: Raster, p: Prim): void {
  switch (p.kind) {
    case 'rect': return r.fillRect(p.x, p.y, p.w, p.h, rgbOf(p.fill));
    case 'line': return r.line(p.x1, p.y1, p.x2, p.y2, p.width, rgbOf(p.color));
    case 'polyline':
      for (let i = 1; i < p.points.length; i++) r.line(p.points[i - 1]![0], p.points[i - 1]![1], p.points[i]![0], p.points[i]![1], p.width, rgbOf(p.color));
      return;
    case 'circle': return r.disc(p.cx, p.cy, p.r, rgbOf(p.color));
    case 'text': return r.text(p.x, p.y, p.text, Math.max(1, Math.round(p.size / 6)), p.anchor, rgbOf(p.color), p.vertical);
  }
}

export function rasterize(scene: Scene): Raster {
  const r = new Raster(scene.width, scene.height);
  for (const p of scene.prims) draw(r, p);
  return r;
}
