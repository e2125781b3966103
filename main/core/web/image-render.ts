import { createRequire } from 'node:module';
import sharp from 'sharp';
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

// Every image is made once from raw pixels: libvips' operation cache would only hold memory.
sharp.cache(false);

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
  const { width, height } = result;
  const relative = options.relativeRegion;
  const region = options.region ?? (relative && {
    x: Math.floor(relative.x0 * width), y: Math.floor(relative.y0 * height),
    width: Math.max(1, Math.round((relative.x1 - relative.x0) * width)), height: Math.max(1, Math.round((relative.y1 - relative.y0) * height)),
  });
  // The rendered RGBA goes to libvips (sharp) for the crop, the downscale and the encoding: about 10x jpeg-js and 3x pngjs.
  let pipeline = sharp(Buffer.from(result.pixels), { raw: { width, height, channels: 4 } });
  if (region) pipeline = pipeline.extract(clipped(width, height, region));
  if (options.viewport) pipeline = pipeline.resize({ ...options.viewport, fit: 'inside', withoutEnlargement: true });
  // dcmjs-imaging's alpha is always opaque: RGB is smaller, and faster to encode.
  pipeline = pipeline.removeAlpha();
  return options.format === 'image/png' ? pipeline.png().toBuffer() : pipeline.jpeg({ quality: options.quality }).toBuffer();
}

/** The region, clipped to the image; one wholly outside is a 400. */
function clipped(width: number, height: number, region: { x: number; y: number; width: number; height: number }): { left: number; top: number; width: number; height: number } {
  const w = Math.min(region.width, width - region.x);
  const h = Math.min(region.height, height - region.y);
  if (w < 1 || h < 1) throw new HttpError(400, `the viewport region starts outside the ${width} x ${height} image`);
  return { left: region.x, top: region.y, width: w, height: h };
}
