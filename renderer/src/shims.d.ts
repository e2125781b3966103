// The cornerstone 2.x family ships no TypeScript types; these are the few members the viewer uses.
declare module 'cornerstone-core' {
  export interface Viewport {
    scale: number;
    translation: { x: number; y: number };
    voi: { windowWidth: number; windowCenter: number };
    invert: boolean;
    pixelReplication: boolean;
    rotation: number;
    hflip: boolean;
    vflip: boolean;
  }
  export interface Image {
    imageId: string;
    rows: number;
    columns: number;
    windowCenter: number | number[];
    windowWidth: number | number[];
    minPixelValue: number;
    maxPixelValue: number;
    color: boolean;
    getPixelData(): ArrayLike<number>;
  }
  export interface EnabledElement {
    element: HTMLElement;
    canvas: HTMLCanvasElement;
    image?: Image;
    viewport?: Viewport;
  }
  const cornerstone: {
    enable(element: HTMLElement, options?: Record<string, unknown>): void;
    disable(element: HTMLElement): void;
    loadImage(imageId: string): Promise<Image>;
    loadAndCacheImage(imageId: string): Promise<Image>;
    displayImage(element: HTMLElement, image: Image, viewport?: Partial<Viewport>): void;
    getViewport(element: HTMLElement): Viewport | undefined;
    setViewport(element: HTMLElement, viewport: Partial<Viewport>): void;
    getDefaultViewportForImage(element: HTMLElement, image: Image): Viewport;
    reset(element: HTMLElement): void;
    resize(element: HTMLElement, fitToWindow?: boolean): void;
    fitToWindow(element: HTMLElement): void;
    getEnabledElement(element: HTMLElement): EnabledElement;
    updateImage(element: HTMLElement): void;
    imageCache: { setMaximumSizeBytes(bytes: number): void; purgeCache(): void };
    metaData: { get(type: string, imageId: string): unknown };
    events: EventTarget;
    EVENTS: Record<string, string>;
  };
  export default cornerstone;
}
declare module 'cornerstone-tools' {
  const cornerstoneTools: {
    external: { cornerstone: unknown; cornerstoneMath: unknown; Hammer?: unknown };
    init(config?: Record<string, unknown>): void;
    addToolForElement(element: HTMLElement, tool: unknown, props?: Record<string, unknown>): void;
    setToolActiveForElement(element: HTMLElement, name: string, options: Record<string, unknown>): void;
    setToolPassiveForElement(element: HTMLElement, name: string, options?: Record<string, unknown>): void;
    WwwcTool: unknown;
    PanTool: unknown;
    ZoomTool: unknown;
  };
  export default cornerstoneTools;
}
declare module 'cornerstone-math' {
  const cornerstoneMath: unknown;
  export default cornerstoneMath;
}
declare module 'dicom-parser' {
  const dicomParser: unknown;
  export default dicomParser;
}
declare module 'cornerstone-wado-image-loader' {
  const loader: {
    external: { cornerstone: unknown; dicomParser: unknown };
    configure(options: { beforeSend?: (xhr: XMLHttpRequest) => void; strict?: boolean; decodeConfig?: Record<string, unknown> }): void;
    webWorkerManager: { initialize(config: Record<string, unknown>): void };
    wadors: { metaDataManager: { add(imageId: string, metadata: unknown): void; remove(imageId: string): void } };
  };
  export default loader;
}

/** Vite: `import url from './file?url'` gives the built asset's URL. */
declare module '*?url' {
  const url: string;
  export default url;
}
