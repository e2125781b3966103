import { createRequire } from 'node:module';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { HttpError } from './http-errors.js';

interface RenderResult {
  width: number;
  height: number;
  pixels: ArrayBuffer;
}
interface Imaging {
  DicomImage: new (buffer: ArrayBuffer) => {
    getNumberOfFrames(): number;
    setElement(keyword: string, value: string): void;
    render(opts?: { frame?: number; windowLevel?: unknown; renderOverlays?: boolean }): RenderResult;
  };
  WindowLevel: new (window: number, level: number) => unknown;
  NativePixelDecoder: {
    initializeAsync(opts?: { webAssemblyModulePathOrUrl?: string; logNativeDecodersMessages?: boolean }): Promise<void>;
    isInitialized(): boolean;
  };
}

const require = createRequire(import.meta.url);
let loading: Promise<Imaging> | undefined;

/**
 * dcmjs-imaging and its WebAssembly codecs (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE…), loaded with the first
 * image rendered: together about 33 MB that an appliance nobody looks at never needs. A failed load is
 * tried again with the next image.
 */
function loadImaging(): Promise<Imaging> {
  loading ??= (async () => {
    const imaging = require('dcmjs-imaging') as Imaging;
    await imaging.NativePixelDecoder.initializeAsync({
      webAssemblyModulePathOrUrl: require.resolve('dcmjs-imaging/build/dcmjs-native-codecs.wasm'),
      logNativeDecodersMessages: false,
    });
    return imaging;
  })().catch((error: unknown) => {
    loading = undefined;
    throw new HttpError(503, `the image codecs did not load: ${(error as Error)?.message ?? String(error)}`);
  });
  return loading;
}

export interface RenderOptions {
  /** 0-based. */
  frame: number;
  /** Fit inside this box, keeping the aspect ratio; never enlarges. */
  viewport?: { width: number; height: number };
  /** The part of the image to show (image pixels), before fitting; clipped to the image. */
  region?: { x: number; y: number; width: number; height: number };
  /** The same as fractions of the image (0.0 to 1.0), as WADO-URI gives it. */
  relativeRegion?: { x0: number; y0: number; x1: number; y1: number };
  window?: { center: number; width: number; voiFunction?: 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID' };
  format: 'image/jpeg' | 'image/png';
  quality: number;
}

/**
 * Renders one frame of a Part 10 file to JPEG or PNG. Grey images are windowed from the dataset's
 * VOI LUT / window attributes, or from the pixel range when it has none (dcmjs-imaging's pipeline).
 */
export async function renderImage(file: Buffer, options: RenderOptions): Promise<Buffer> {
  const imaging = await loadImaging();
  const image = new imaging.DicomImage(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer);
  const frames = image.getNumberOfFrames();
  if (options.frame >= frames) throw new HttpError(404, `frame ${options.frame + 1} does not exist (the instance has ${frames})`);
  let result: RenderResult;
  // dcmjs-imaging applies the data set's VOI LUT Function (PS3.3 C.11.2.1.3) to the window it is given.
  if (options.window?.voiFunction) image.setElement('VOILUTFunction', options.window.voiFunction);
  try {
    result = image.render({
      frame: options.frame,
      renderOverlays: false,
      ...(options.window ? { windowLevel: new imaging.WindowLevel(options.window.width, options.window.center) } : {}),
    });
  } catch (error) {
    throw new HttpError(500, `cannot render the image: ${(error as Error)?.message ?? String(error)}`);
  }
  let { width, height } = result;
  let rgba: Buffer = Buffer.from(result.pixels);
  const relative = options.relativeRegion;
  const region = options.region ?? (relative && {
    x: Math.floor(relative.x0 * width), y: Math.floor(relative.y0 * height),
    width: Math.max(1, Math.round((relative.x1 - relative.x0) * width)), height: Math.max(1, Math.round((relative.y1 - relative.y0) * height)),
  });
  if (region) ({ width, height, rgba } = crop(rgba, width, height, region));
  if (options.viewport) ({ width, height, rgba } = fit(rgba, width, height, options.viewport));
  if (options.format === 'image/png') {
    const png = new PNG({ width, height });
    rgba.copy(png.data);
    return PNG.sync.write(png);
  }
  return Buffer.from(jpeg.encode({ data: rgba, width, height }, options.quality).data);
}

/** The region of an RGBA image, clipped to it; a region wholly outside is a 400. */
function crop(rgba: Buffer, width: number, height: number, region: { x: number; y: number; width: number; height: number }): { width: number; height: number; rgba: Buffer } {
  const w = Math.min(region.width, width - region.x);
  const h = Math.min(region.height, height - region.y);
  if (w < 1 || h < 1) throw new HttpError(400, `the viewport region starts outside the ${width} x ${height} image`);
  const out = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++) rgba.copy(out, y * w * 4, ((region.y + y) * width + region.x) * 4, ((region.y + y) * width + region.x + w) * 4);
  return { width: w, height: h, rgba: out };
}

/** Box-filter downscale into the viewport. */
function fit(rgba: Buffer, width: number, height: number, box: { width: number; height: number }): { width: number; height: number; rgba: Buffer } {
  const scale = Math.min(box.width / width, box.height / height, 1);
  if (scale >= 1) return { width, height, rgba };
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const out = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++) {
    const y0 = Math.floor((y * height) / h);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * height) / h));
    for (let x = 0; x < w; x++) {
      const x0 = Math.floor((x * width) / w);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * width) / w));
      const sum = [0, 0, 0, 0];
      for (let sy = y0; sy < y1; sy++) {
        for (let sx = x0; sx < x1; sx++) {
          const i = (sy * width + sx) * 4;
          sum[0]! += rgba[i]!;
          sum[1]! += rgba[i + 1]!;
          sum[2]! += rgba[i + 2]!;
          sum[3]! += rgba[i + 3]!;
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      const o = (y * w + x) * 4;
      for (let c = 0; c < 4; c++) out[o + c] = Math.round(sum[c]! / n);
    }
  }
  return { width: w, height: h, rgba: out };
}
