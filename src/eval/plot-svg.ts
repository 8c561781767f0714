/** A chart scene (plot.ts) as an SVG document. */
import type { Scene } from './plot.js';

// XML 1.0 has no way to write most control characters (even escaped), so they become spaces.
const esc = (s: string) => s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, ' ').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const n = (v: number) => String(Math.round(v * 100) / 100);

export function sceneToSvg(scene: Scene): string {
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${scene.width}" height="${scene.height}" viewBox="0 0 ${scene.width} ${scene.height}" font-family="Helvetica, Arial, sans-serif">`,
  ];
  for (const p of scene.prims) {
    switch (p.kind) {
      case 'rect':
        out.push(`<rect x="${n(p.x)}" y="${n(p.y)}" width="${n(p.w)}" height="${n(p.h)}" fill="${p.fill}"/>`);
        break;
      case 'line':
        out.push(`<line x1="${n(p.x1)}" y1="${n(p.y1)}" x2="${n(p.x2)}" y2="${n(p.y2)}" stroke="${p.color}" stroke-width="${p.width}"/>`);
        break;
      case 'polyline':
        out.push(`<polyline points="${p.points.map(([x, y]) => `${n(x)},${n(y)}`).join(' ')}" fill="none" stroke="${p.color}" stroke-width="${p.width}" stroke-linejoin="round"/>`);
        break;
      case 'circle':
        out.push(`<circle cx="${n(p.cx)}" cy="${n(p.cy)}" r="${p.r}" fill="${p.color}"/>`);
        break;
      case 'text': {
        const rot = p.vertical ? ` transform="rotate(-90 ${n(p.x)} ${n(p.y)})"` : '';
        out.push(`<text x="${n(p.x)}" y="${n(p.y)}" font-size="${p.size}" text-anchor="${p.anchor}" fill="${p.color}"${rot}>${esc(p.text)}</text>`);
        break;
      }
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
