// A WebGPU device through Dawn's Node binding (npm `webgpu`, an optional dependency), with the errors a user needs when
// there is none: which piece is missing (the package, the Vulkan loader, a driver ICD) and how to install it.
//
// Work is batched: kernels encode their dispatches (`dispatch`) into one compute pass of one command encoder, which is
// submitted every `submitEvery` dispatches and by `flush()`. Reading a buffer back (`read`) flushes first and is the
// only place that waits for the GPU, so a whole forward or decode step is a few submits followed by one small readback
// (measured on an H200 through Dawn, with a pass per dispatch: ~5 µs a dispatch, ~60 µs a submit, ~70 µs a readback).
import { existsSync } from 'node:fs';
import type { DeviceCounters } from '../backend.js';

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
  /**
   * Submit the encoded work after this many dispatches (default 64), so that the GPU runs the first part of a step
   * while the host encodes the rest; a read or write submits whatever is pending in any case.
   */
  submitEvery?: number;
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
  /** Kernel parameters of the dispatches encoded since the last flush, uploaded by flush (see `dispatch`). */
  private readonly ring: UniformRing;
  /** Bind groups by layout and bound ranges (see `dispatch`), and the keys that name each buffer (by buffer id). */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bindGroupsOf = new Map<number, string[]>();
  private readonly layouts = new Map<string, KernelLayout>();
  private lost: string | null = null;

  private constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    /** The adapter's name, e.g. "nvidia-h200" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
    readonly adapterName: string,
  ) {
    this.ring = new UniformRing(device);
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
    if (opts.submitEvery !== undefined) {
      if (!(Number.isInteger(opts.submitEvery) && opts.submitEvery >= 1)) throw new RangeError(`webgpu: submitEvery ${opts.submitEvery} is not a positive integer`);
      dev.submitEvery = opts.submitEvery;
    }
    return dev;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  private check(): void {
    if (this.lost !== null) throw new Error(`the WebGPU device was lost (${this.lost})`);
  }

  /**
   * A storage buffer of `floats` f32 (or i32) values, zeroed, optionally filled from `data`; its bytes are counted in
   * `counters` until `destroyBuffer`. `what` names it in the error when it is larger than the adapter allows.
   */
  createBuffer(floats: number, data?: Float32Array, what = `a buffer of ${floats} floats`): GPUBuffer {
    this.check();
    const size = Math.max(16, Math.ceil((floats * 4) / 16) * 16);
    const max = this.device.limits.maxBufferSize;
    if (size > max)
      throw new RangeError(
        `webgpu: ${what} needs ${size} bytes, more than this adapter's maxBufferSize (${max} bytes): use a smaller model ` +
          `or batch, or a GPU whose maxBufferSize is at least ${size}`,
      );
    const buf = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    counted.add(buf);
    this.counters.liveBytes += size;
    this.counters.peakBytes = Math.max(this.counters.peakBytes, this.counters.liveBytes);
    if (data !== undefined) this.write(buf, data);
    return buf;
  }

  /** Copies host floats into `buf` at element `offset` (queued in order with the encoded work). */
  write(buf: GPUBuffer, data: Float32Array, offset = 0): void {
    this.flush(); // writes are queue operations: keep them ordered after work already encoded
    this.device.queue.writeBuffer(buf, offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Set when opened with `profile`: every dispatch gets a pass of its own, timed. */
  profiler: PassProfiler | null = null;

  /** Running totals of the host-side work (Backend.counters). */
  readonly counters: DeviceCounters = { dispatches: 0, bindGroupsMade: 0, submits: 0, waitSeconds: 0, liveBytes: 0, peakBytes: 0 };

  /** The compute pass that dispatches are appended to (ended by the next copy, read or flush). */
  private pass: GPUComputePassEncoder | null = null;

  /**
   * The bind group layout and pipeline layout of kernels whose group 0 holds, at each binding, a uniform (their
   * parameters, bound with a dynamic offset), a read-only or a read-write storage buffer. One per spec, shared by every
   * pipeline made with it.
   */
  layout(spec: readonly BindingKind[]): KernelLayout {
    const id = spec.join('');
    let l = this.layouts.get(id);
    if (l === undefined) {
      const type = { u: 'uniform', r: 'read-only-storage', w: 'storage' } as const;
      const group = this.device.createBindGroupLayout({
        entries: spec.map((k, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: type[k], hasDynamicOffset: k === 'u' } })),
        label: `kernel ${id}`,
      });
      l = { id, spec, group, pipeline: this.device.createPipelineLayout({ bindGroupLayouts: [group] }) };
      this.layouts.set(id, l);
    }
    return l;
  }

  /**
   * Encodes one dispatch of `pipeline` (made with `layout`): `params` become its uniform, `storage[i]` is bound at
   * the layout's i-th storage binding (in binding order). A decode step or a training step encodes hundreds of
   * dispatches, so their host cost is kept low: consecutive dispatches share one compute pass (WebGPU makes each one's
   * writes visible to the next), the parameters of every dispatch since the last flush share one uniform buffer at
   * dynamic offsets, and bind groups are reused while the same ranges of the same buffers are bound (every step binds
   * the same weights and workspace). When profiling, each dispatch gets a pass of its own, timed under `label`.
   */
  dispatch(label: string, pipeline: GPUComputePipeline, layout: KernelLayout, params: ArrayBuffer, storage: readonly GPUBufferBinding[], x: number, y = 1, z = 1): void {
    const uniformAt = this.ring.push(params, () => this.flush());
    const bind = this.bindGroup(layout, params.byteLength, storage);
    let pass: GPUComputePassEncoder;
    if (this.profiler !== null) {
      const enc = this.commandEncoder();
      pass = enc.beginComputePass({ timestampWrites: this.profiler.next(label, enc) });
    } else {
      this.pass ??= this.commandEncoder().beginComputePass();
      pass = this.pass;
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind, [uniformAt]);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler !== null) pass.end();
    this.counters.dispatches++;
    // Submit in batches: the GPU starts on the first ones while the host encodes the rest (a decode step's layers).
    if (++this.unsubmitted >= this.submitEvery) this.flush();
  }

  /** Dispatches encoded since the last submit, and how many make a submit (OpenWebGpuOptions.submitEvery). */
  private unsubmitted = 0;
  private submitEvery = 64;

  private bindGroup(layout: KernelLayout, uniformBytes: number, storage: readonly GPUBufferBinding[]): GPUBindGroup {
    const uSize = Math.ceil(uniformBytes / 16) * 16;
    const ids = storage.map((b) => bufferId(b.buffer));
    let key = `${layout.id}|${uSize}`;
    storage.forEach((b, i) => (key += `|${ids[i]}:${b.offset ?? 0}:${b.size ?? -1}`));
    let g = this.bindGroups.get(key);
    if (g === undefined) {
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.forgetBindGroups();
      let s = 0;
      g = this.device.createBindGroup({
        layout: layout.group,
        entries: layout.spec.map((k, binding) => ({ binding, resource: k === 'u' ? { buffer: this.ring.buffer, offset: 0, size: uSize } : storage[s++]! })),
      });
      if (s !== storage.length) throw new Error(`dispatch: ${storage.length} storage bindings for a layout with ${s}`);
      this.bindGroups.set(key, g);
      this.counters.bindGroupsMade++;
      for (const id of new Set(ids)) {
        const keys = this.bindGroupsOf.get(id);
        if (keys === undefined) this.bindGroupsOf.set(id, [key]);
        else keys.push(key);
      }
    }
    return g;
  }

  /** Work buffers kept between calls, by key (see `scratch`). */
  private readonly scratchBuffers = new Map<string, GPUBuffer>();

  /**
   * A work buffer of at least `floats` values kept between calls under `key` (grown by half again when too small, at
   * most to `maxFloats`): large temporaries that a kernel sequence needs on every call (a logits block, partial
   * products), which createBuffer + destroyBuffer would reallocate, and submit for, each time. A key belongs to one
   * op, which never calls another op that uses it.
   */
  scratch(key: string, floats: number, maxFloats = Infinity): GPUBuffer {
    let buf = this.scratchBuffers.get(key);
    if (buf === undefined || buf.size < floats * 4) {
      const grown = Math.ceil(((buf?.size ?? 0) * 1.5) / 16) * 4;
      if (buf !== undefined) this.destroyBuffer(buf);
      buf = this.createBuffer(Math.max(floats, Math.min(maxFloats, grown)), undefined, `the work buffer '${key}'`);
      this.scratchBuffers.set(key, buf);
    }
    return buf;
  }

  /** Destroys a buffer, and drops the bind groups that bind it (call this, not buffer.destroy(), for bound buffers). */
  destroyBuffer(buf: GPUBuffer): void {
    this.flush();
    const id = bufferIds.get(buf);
    if (id !== undefined) {
      for (const key of this.bindGroupsOf.get(id) ?? []) this.bindGroups.delete(key);
      this.bindGroupsOf.delete(id);
    }
    if (counted.delete(buf)) this.counters.liveBytes -= buf.size;
    buf.destroy();
  }

  private forgetBindGroups(): void {
    this.bindGroups.clear();
    this.bindGroupsOf.clear();
  }

  /** Seconds of GPU time by pass label since the device was opened (profiling only), largest first. */
  async profile(): Promise<Array<{ label: string; seconds: number; passes: number }>> {
    if (this.profiler === null) throw new Error('this device was not opened with profile: true');
    this.flush();
    return this.profiler.report(this);
  }

  /** The encoder, for commands outside a compute pass (copies, query resolves); submitted by `flush()`. */
  commandEncoder(): GPUCommandEncoder {
    this.check();
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass !== null) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submits the encoded work (no wait). */
  flush(): void {
    this.endPass();
    // The parameters go up before the work that reads them; queue.writeBuffer is ordered with submits, so the next
    // batch may reuse the ring once this submit is queued.
    this.ring.upload();
    this.unsubmitted = 0;
    if (this.encoder !== null) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.counters.submits++;
    }
  }

  /** Waits until everything submitted so far has run. */
  async sync(): Promise<void> {
    this.flush();
    const t0 = performance.now();
    await this.device.queue.onSubmittedWorkDone();
    this.counters.waitSeconds += (performance.now() - t0) / 1000;
    this.check();
  }

  /** Reads `floats` values from element `offset` of `buf` back to the host (flushes first). */
  async read(buf: GPUBuffer, floats: number, offset = 0): Promise<Float32Array> {
    const bytes = Math.ceil((floats * 4) / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.commandEncoder();
    enc.copyBufferToBuffer(buf, offset * 4, staging, 0, bytes);
    this.flush();
    const t0 = performance.now();
    await staging.mapAsync(GPUMapMode.READ);
    this.counters.waitSeconds += (performance.now() - t0) / 1000;
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    this.check();
    return out.subarray(0, floats);
  }

  dispose(): void {
    this.flush();
    this.profiler?.dispose();
    this.ring.buffer.destroy();
    this.forgetBindGroups();
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

/** What a kernel binds at each binding of group 0: u = its uniform parameters, r = read-only storage, w = read-write. */
export type BindingKind = 'u' | 'r' | 'w';

export interface KernelLayout {
  readonly id: string;
  readonly spec: readonly BindingKind[];
  readonly group: GPUBindGroupLayout;
  /** For createComputePipeline's `layout`. */
  readonly pipeline: GPUPipelineLayout;
}

/** Bind groups kept at most (a safety net: those of freed buffers are dropped as they are freed). */
const MAX_BIND_GROUPS = 16384;

/** Buffers made by createBuffer, whose bytes are in the counters until destroyBuffer. */
const counted = new WeakSet<GPUBuffer>();

/** A number per buffer, for bind group keys (a WeakMap: a collected buffer takes its number with it). */
const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 0;
function bufferId(buf: GPUBuffer): number {
  let id = bufferIds.get(buf);
  if (id === undefined) bufferIds.set(buf, (id = nextBufferId++));
  return id;
}

/**
 * The uniform parameters of the dispatches encoded since the last flush: packed on the host at the device's uniform
 * offset alignment, uploaded in one write by the flush that submits them. A full ring flushes first.
 */
class UniformRing {
  static readonly BYTES = 1 << 20;
  readonly buffer: GPUBuffer;
  private readonly host = new Uint8Array(UniformRing.BYTES);
  private used = 0;
  private readonly align: number;
  private readonly maxBinding: number;

  constructor(private readonly device: GPUDevice) {
    this.align = device.limits.minUniformBufferOffsetAlignment;
    this.maxBinding = device.limits.maxUniformBufferBindingSize;
    this.buffer = device.createBuffer({ size: UniformRing.BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'kernel parameters' });
  }

  /** Places `params` in the ring and returns their offset; `flush` is called first when they do not fit. */
  push(params: ArrayBuffer, flush: () => void): number {
    const size = Math.ceil(params.byteLength / 16) * 16;
    if (size > this.maxBinding || size > UniformRing.BYTES) throw new RangeError(`kernel parameters of ${params.byteLength} bytes exceed the uniform binding limit (${this.maxBinding})`);
    if (this.used + size > UniformRing.BYTES) flush();
    const at = this.used;
    this.host.set(new Uint8Array(params), at);
    this.used = Math.ceil((at + size) / this.align) * this.align;
    return at;
  }

  /** Writes the packed parameters to the GPU buffer and starts a new batch. */
  upload(): void {
    if (this.used === 0) return;
    this.device.queue.writeBuffer(this.buffer, 0, this.host.buffer, 0, Math.min(this.used, UniformRing.BYTES));
    this.used = 0;
  }
}
