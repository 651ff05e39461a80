// A WebGPU device through Dawn's Node binding (npm `webgpu`, an optional dependency), with the errors a user needs when
// there is none: which piece is missing (the package, the Vulkan loader, a driver ICD) and how to install it.
//
// Work is batched: kernels encode their dispatches into one command encoder, and `flush()` submits it. Reading a buffer
// back (`read`) flushes first and is the only place that waits for the GPU, so a whole forward or decode step can be
// one submit followed by one small readback (on an H200 through Dawn: ~5 µs a dispatch, ~60 µs a submit, ~70 µs a
// readback).
import { existsSync } from 'node:fs';

/** The one `webgpu` version oreal is tested with (package.json pins the same). */
export const WEBGPU_PACKAGE = 'webgpu@0.6.2';

export interface OpenWebGpuOptions {
  /**
   * Time every compute pass with GPU timestamps (needs the adapter's timestamp-query feature) and sum them by label;
   * `profile()` reports them. For finding where the time goes; it adds a query per pass.
   */
  profile?: boolean;
  /** Dawn toggles/flags passed to `create()`, e.g. 'enable-dawn-features=allow_unsafe_apis'. */
  dawnFlags?: string[];
  /** Prefer a discrete GPU (default) or the low-power one. */
  powerPreference?: GPUPowerPreference;
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

const VULKAN_LOADERS = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1', '/usr/lib/libvulkan.so.1', '/usr/lib64/libvulkan.so.1'];

/** Why there is no adapter, in the words a user can act on. */
function noAdapterMessage(): string {
  const hints: string[] = [];
  if (process.platform === 'linux' && !VULKAN_LOADERS.some((p) => existsSync(p)))
    hints.push('the Vulkan loader libvulkan.so.1 is not installed (Debian/Ubuntu: apt-get install libvulkan1)');
  hints.push(
    'no Vulkan driver (ICD) answered: on an NVIDIA GPU install the driver and, if its ICD is not found, set ' +
      'VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json (or where your driver puts it); on a CPU-only machine ' +
      "install Mesa's lavapipe, version 25 or newer (Debian 12: apt-get install -t bookworm-backports mesa-vulkan-drivers)",
  );
  return `no WebGPU adapter: ${hints.join('; ')}`;
}

/**
 * Dawn instances by flags, created once and never released: dawn.node crashes when the object `create()` returned is
 * garbage-collected while anything made from it is still alive, including during process exit.
 */
const dawnInstances = new Map<string, GPU>();

/** A Dawn device with a pending command encoder. Keep it referenced while in use (Dawn's GPU object must live). */
export class WebGpuDevice {
  private encoder: GPUCommandEncoder | null = null;
  private readonly uniformPool: GPUBuffer[] = [];
  private readonly uniformsInFlight: GPUBuffer[] = [];
  private lost: string | null = null;

  private constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    /** The adapter's name, e.g. "nvidia-h200" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
    readonly adapterName: string,
  ) {
    void this.device.lost.then((info) => {
      this.lost = `${info.reason}: ${info.message}`;
    });
  }

  /** Opens the default (high-performance) adapter with its full binding and workgroup limits. */
  static async open(opts: OpenWebGpuOptions = {}): Promise<WebGpuDevice> {
    let dawn: DawnModule;
    try {
      dawn = (await import('webgpu')) as unknown as DawnModule;
    } catch (e) {
      throw new Error(`the WebGPU backend needs the optional package ${WEBGPU_PACKAGE} (npm install ${WEBGPU_PACKAGE}): ${(e as Error).message}`);
    }
    // GPUBufferUsage, GPUMapMode, ... as globals, the way a browser has them.
    for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    const flags = opts.dawnFlags ?? [];
    const key = flags.join('\n');
    let gpu = dawnInstances.get(key);
    if (gpu === undefined) {
      gpu = dawn.create(flags);
      dawnInstances.set(key, gpu);
    }
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (adapter === null) throw new Error(noAdapterMessage());
    const L = adapter.limits;
    const profile = opts.profile === true && adapter.features.has('timestamp-query');
    if (opts.profile === true && !profile) throw new Error(`profiling needs the adapter's timestamp-query feature, which ${adapter.info.device || 'this adapter'} lacks`);
    const device = await adapter.requestDevice({
      requiredFeatures: profile ? ['timestamp-query'] : [],
      requiredLimits: {
        maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
        maxBufferSize: L.maxBufferSize,
        maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
        maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      },
    });
    const i = adapter.info;
    // The device first, then the driver's own description, e.g. "llvmpipe-llvm-15-0-6-256-bits- (llvmpipe: Mesa
    // 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1)".
    const parts = [i.device, i.description].filter((x) => x !== undefined && x !== '');
    const name = parts.length === 2 ? `${parts[0]} (${parts[1]})` : (parts[0] ?? `${i.vendor || 'unknown'} adapter`);
    const dev = new WebGpuDevice(adapter, device, name);
    if (profile) dev.profiler = new PassProfiler(device);
    return dev;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  private check(): void {
    if (this.lost !== null) throw new Error(`the WebGPU device was lost (${this.lost})`);
  }

  /** A storage buffer of `floats` f32 values (zeroed), optionally filled from `data`. */
  createBuffer(floats: number, data?: Float32Array): GPUBuffer {
    this.check();
    const size = Math.max(16, Math.ceil((floats * 4) / 16) * 16);
    if (size > this.device.limits.maxBufferSize) throw new Error(`buffer of ${floats} floats exceeds this adapter's maxBufferSize (${this.device.limits.maxBufferSize} bytes)`);
    const buf = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    if (data !== undefined) this.write(buf, data);
    return buf;
  }

  /** Copies host floats into `buf` at element `offset` (queued in order with the encoded work). */
  write(buf: GPUBuffer, data: Float32Array, offset = 0): void {
    this.flush(); // writes are queue operations: keep them ordered after work already encoded
    this.device.queue.writeBuffer(buf, offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Set when opened with `profile`: every pass begun through `beginPass` is timed. */
  profiler: PassProfiler | null = null;

  /** A compute pass on the pending encoder, timed under `label` when profiling. */
  beginPass(label: string): GPUComputePassEncoder {
    const enc = this.commandEncoder();
    const tw = this.profiler?.next(label, enc);
    return enc.beginComputePass(tw ? { timestampWrites: tw } : {});
  }

  /** Seconds of GPU time by pass label since the device was opened (profiling only), largest first. */
  async profile(): Promise<Array<{ label: string; seconds: number; passes: number }>> {
    if (this.profiler === null) throw new Error('this device was not opened with profile: true');
    this.flush();
    return this.profiler.report(this);
  }

  /** The encoder that kernels append to; submitted by `flush()`. */
  commandEncoder(): GPUCommandEncoder {
    this.check();
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** A uniform buffer holding `bytes`, valid until the next flush completes (pooled). */
  uniform(bytes: ArrayBuffer): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
    let buf = this.uniformPool.pop();
    if (buf === undefined || buf.size < size) buf = this.device.createBuffer({ size: Math.max(size, 64), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(buf, 0, bytes);
    this.uniformsInFlight.push(buf);
    return buf;
  }

  /** Submits the encoded work (no wait). */
  flush(): void {
    if (this.encoder !== null) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
    // queue.writeBuffer is ordered with submits, so a uniform may be rewritten once its submit is queued.
    this.uniformPool.push(...this.uniformsInFlight.splice(0));
  }

  /** Waits until everything submitted so far has run. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  /** Reads `floats` values from element `offset` of `buf` back to the host (flushes first). */
  async read(buf: GPUBuffer, floats: number, offset = 0): Promise<Float32Array> {
    const bytes = Math.ceil((floats * 4) / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.commandEncoder();
    enc.copyBufferToBuffer(buf, offset * 4, staging, 0, bytes);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    this.check();
    return out.subarray(0, floats);
  }

  dispose(): void {
    this.flush();
    this.profiler?.dispose();
    for (const b of this.uniformPool) b.destroy();
    this.uniformPool.length = 0;
    this.device.destroy();
  }
}

/** GPU timestamps around compute passes, resolved in batches and summed by label. */
class PassProfiler {
  // Passes per query set: 2 timestamps each, and WebGPU caps a query set at 4,096 queries.
  private static readonly BATCH = 2048;
  private set: GPUQuerySet;
  private labels: string[] = [];
  private readonly pending: Array<{ buf: GPUBuffer; labels: string[] }> = [];
  private readonly totals = new Map<string, { ns: bigint; passes: number }>();

  constructor(private readonly device: GPUDevice) {
    this.set = device.createQuerySet({ type: 'timestamp', count: 2 * PassProfiler.BATCH });
  }

  /** The timestamp writes for the next pass; a full query set is resolved into a buffer on `enc` first. */
  next(label: string, enc: GPUCommandEncoder): GPUComputePassTimestampWrites {
    if (this.labels.length === PassProfiler.BATCH) this.resolve(enc);
    const i = this.labels.push(label) - 1;
    return { querySet: this.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  private resolve(enc: GPUCommandEncoder): void {
    const n = this.labels.length;
    if (n === 0) return;
    const buf = this.device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    enc.resolveQuerySet(this.set, 0, 2 * n, buf, 0);
    this.pending.push({ buf, labels: this.labels });
    this.labels = [];
    this.set = this.device.createQuerySet({ type: 'timestamp', count: 2 * PassProfiler.BATCH });
  }

  async report(dev: WebGpuDevice): Promise<Array<{ label: string; seconds: number; passes: number }>> {
    this.resolve(dev.commandEncoder());
    for (const { buf, labels } of this.pending.splice(0)) {
      const staging = this.device.createBuffer({ size: buf.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      dev.commandEncoder().copyBufferToBuffer(buf, 0, staging, 0, buf.size);
      dev.flush();
      await staging.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      buf.destroy();
      labels.forEach((label, i) => {
        const e = this.totals.get(label) ?? { ns: 0n, passes: 0 };
        const d = t[2 * i + 1]! - t[2 * i]!;
        e.ns += d > 0n ? d : 0n;
        e.passes++;
        this.totals.set(label, e);
      });
    }
    return [...this.totals].map(([label, e]) => ({ label, seconds: Number(e.ns) / 1e9, passes: e.passes })).sort((a, b) => b.seconds - a.seconds);
  }

  dispose(): void {
    this.set.destroy();
  }
}
