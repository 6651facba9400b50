import { useEffect, useId, useRef, useState } from "react";
import type { GouacheApi } from "../api/client";
import { messageOf } from "../api/errors";
import type { CreateJobRequest, Job, ListModelsResponse, Style } from "../api/types";
import { ADVANCED_DEFAULTS, advancedParams, type AdvancedInput } from "../advanced";
import { AdvancedControls } from "../components/AdvancedControls";
import { ImagePicker } from "../components/ImagePicker";
import { ResultPane, type Run } from "../components/ResultPane";
import { StylePicker } from "../components/StylePicker";
import { WeightsControl, type WeightedStyle } from "../components/WeightsControl";
import { formatBytes } from "../files";
import { DEFAULT_SETTINGS, loadSettings, saveSettings } from "../settings";
import { apiWeights, DEFAULT_WEIGHT, MAX_STYLES, weightsProblem } from "../weights";

interface Upload {
  name: string;
  size: number;
  preview: string;
  fileUrl: string | null;
  error: string | null;
  sent: number;
}

interface ChosenStyle extends WeightedStyle {
  /** What style_urls carries: a curated style's id, or an uploaded file_url. */
  url: string;
}

const IDLE: Run = { job: null, error: null };

function newKey(): string {
  return crypto.randomUUID();
}

export function Create({ api }: { api: GouacheApi }) {
  const [content, setContent] = useState<Upload | null>(null);
  const [curated, setCurated] = useState<Style[] | null>(null);
  const [curatedError, setCuratedError] = useState<string | null>(null);
  const [chosen, setChosen] = useState<ChosenStyle[]>([]);
  const [styleUpload, setStyleUpload] = useState<{ busy: boolean; error: string | null }>({
    busy: false,
    error: null,
  });
  const [models, setModels] = useState<ListModelsResponse | null>(null);
  const [modelsError, setModelsError] = useState<string | null>(null);
  const [saved] = useState(loadSettings);
  const [model, setModel] = useState(saved.model);
  const [alpha, setAlpha] = useState(saved.alpha);
  const [luminanceOnly, setLuminanceOnly] = useState(saved.luminanceOnly);
  const [histogramMatch, setHistogramMatch] = useState(saved.histogramMatch);
  const [advanced, setAdvanced] = useState<AdvancedInput>(saved.advanced);
  const [preview, setPreview] = useState<Run>(IDLE);
  const [full, setFull] = useState<Run>(IDLE);
  const [running, setRunning] = useState(false);
  const [submitError, setSubmitError] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);
  // Only the newest content upload may set the state: an older one can finish after it.
  const uploads = useRef(0);
  const ids = useId();

  useEffect(() => {
    api.listStyles(true).then(setCurated, (error: unknown) => {
      setCuratedError(messageOf(error));
    });
    api.listModels().then(
      (answer) => {
        setModels(answer);
        // A remembered model this mesh does not serve falls back to the default.
        const known = new Set([
          ...answer.routes.map((route) => route.alias),
          ...answer.versions.map((version) => version.name),
        ]);
        setModel((current) => (known.has(current) ? current : DEFAULT_SETTINGS.model));
      },
      (error: unknown) => {
        setModelsError(messageOf(error));
      },
    );
    return () => abort.current?.abort();
  }, [api]);

  // What is set now is the default next time.
  useEffect(() => {
    saveSettings({ model, alpha, luminanceOnly, histogramMatch, advanced });
  }, [model, alpha, luminanceOnly, histogramMatch, advanced]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      const typing =
        target !== null && ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName) &&
        (target as HTMLInputElement).type !== "range" && (target as HTMLInputElement).type !== "checkbox";
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "r" || event.key === "R") {
        setAlpha(DEFAULT_SETTINGS.alpha);
        setLuminanceOnly(DEFAULT_SETTINGS.luminanceOnly);
        setHistogramMatch(DEFAULT_SETTINGS.histogramMatch);
        setAdvanced(ADVANCED_DEFAULTS);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("keydown", onKey);
    };
  }, []);

  async function uploadContent(file: File) {
    const turn = (uploads.current += 1);
    // A new photo ends following the old one's jobs (they still finish, in the gallery).
    abort.current?.abort();
    setRunning(false);
    if (content) URL.revokeObjectURL(content.preview);
    const upload: Upload = {
      name: file.name,
      size: file.size,
      preview: URL.createObjectURL(file),
      fileUrl: null,
      error: null,
      sent: 0,
    };
    setContent(upload);
    setPreview(IDLE);
    setFull(IDLE);
    try {
      const fileUrl = await api.upload(file, file.name, "content", (sent) => {
        if (turn === uploads.current) setContent({ ...upload, sent });
      });
      if (turn === uploads.current) setContent({ ...upload, sent: 1, fileUrl });
    } catch (error) {
      if (turn === uploads.current) setContent({ ...upload, error: messageOf(error) });
    }
  }

  async function uploadStyle(file: File) {
    setStyleUpload({ busy: true, error: null });
    try {
      const url = await api.upload(file, file.name, "style");
      setChosen((current) => [
        ...current,
        { key: url, url, name: file.name, weight: DEFAULT_WEIGHT },
      ]);
      setStyleUpload({ busy: false, error: null });
    } catch (error) {
      setStyleUpload({ busy: false, error: messageOf(error) });
    }
  }

  function toggleCurated(style: Style) {
    setChosen((current) =>
      current.some((item) => item.key === style.style_id)
        ? current.filter((item) => item.key !== style.style_id)
        : [
            ...current,
            {
              key: style.style_id,
              url: style.style_id,
              name: style.title || style.style_id,
              weight: DEFAULT_WEIGHT,
            },
          ],
    );
  }

  const weights = chosen.map((style) => style.weight);
  const extra = advancedParams(advanced);
  const problem =
    content === null || content.fileUrl === null
      ? "upload a content image first"
      : chosen.length === 0
        ? "choose at least one style"
        : (weightsProblem(weights) ?? extra.problem);

  async function stylize() {
    if (problem !== null || content?.fileUrl == null || extra.params === null) return;
    abort.current?.abort();
    const controller = new AbortController();
    abort.current = controller;
    const request: Omit<CreateJobRequest, "lane"> = {
      content_url: content.fileUrl,
      style_urls: chosen.map((style) => style.url),
      model_version: model,
      params: {
        ...extra.params,
        alpha,
        luminance_only: luminanceOnly,
        histogram_match: histogramMatch,
        weights: apiWeights(weights),
      },
    };
    setRunning(true);
    setSubmitError(null);
    setPreview(IDLE);
    setFull(IDLE);
    // The preview lane answers first (at most 512 px, served before exports); the full
    // result is asked for at once and arrives after it.
    const follow = async (lane: "preview" | "export", set: (run: Run) => void) => {
      let last: Job | null = null;
      try {
        const created = await api.createJob({ ...request, lane }, newKey());
        last = await api.follow(
          created.job_id,
          (job) => {
            last = job;
            set({ job, error: null });
          },
          controller.signal,
        );
        set({ job: last, error: null });
      } catch (error) {
        if (!controller.signal.aborted) set({ job: last, error: messageOf(error) });
      }
    };
    await Promise.all([follow("preview", setPreview), follow("export", setFull)]);
    if (!controller.signal.aborted) setRunning(false);
  }

  async function cancel() {
    abort.current?.abort();
    setRunning(false);
    const live = [preview.job, full.job].filter(
      (job): job is Job => job !== null && (job.status === "pending" || job.status === "running"),
    );
    try {
      const canceled = await Promise.all(live.map((job) => api.cancelJob(job.job_id)));
      for (const job of canceled) (job.lane === "preview" ? setPreview : setFull)({ job, error: null });
    } catch (error) {
      setSubmitError(messageOf(error));
    }
  }

  const aliases = models?.routes.map((route) => route.alias) ?? [];
  const versions = models?.versions ?? [];
  const description = versions.find(
    (version) =>
      version.name === model ||
      models?.routes.find((route) => route.alias === model)?.targets[0]?.model_version ===
        version.name,
  )?.description;

  return (
    <main id="main" className="create">
      <h1 className="visually-hidden">Create</h1>
      <div className="columns">
        <div className="controls">
          <section aria-labelledby={`${ids}-content`}>
            <h2 id={`${ids}-content`}>1. Content image</h2>
            <ImagePicker
              label="Content image"
              hint="PNG, JPEG or WebP, up to 25 MB. Drop a file here or choose one."
              onPicked={(file) => void uploadContent(file)}
            />
            {content ? (
              <div className="upload-state" aria-live="polite">
                <img src={content.preview} alt={`Your content image, ${content.name}`} />
                <span>
                  {content.name} ({formatBytes(content.size)}):{" "}
                  {content.error
                    ? ""
                    : content.fileUrl
                      ? "uploaded"
                      : `uploading… ${Math.round(content.sent * 100)}%`}
                </span>
                {!content.fileUrl && !content.error ? (
                  <progress
                    max={100}
                    value={Math.round(content.sent * 100)}
                    aria-label="Upload progress"
                  />
                ) : null}
              </div>
            ) : null}
            {content?.error ? (
              <p role="alert" className="error">
                Upload refused: {content.error}
              </p>
            ) : null}
          </section>

          <section aria-labelledby={`${ids}-styles`}>
            <h2 id={`${ids}-styles`}>2. Styles</h2>
            <StylePicker
              api={api}
              styles={curated}
              error={curatedError}
              chosen={new Set(chosen.map((style) => style.key))}
              onToggle={toggleCurated}
            />
            <ImagePicker
              label="Or upload a style image"
              hint={`Your own painting or texture. Up to ${MAX_STYLES} styles in all.`}
              disabled={styleUpload.busy || chosen.length >= MAX_STYLES}
              onPicked={(file) => void uploadStyle(file)}
            />
            {styleUpload.busy ? <p className="hint">Uploading the style…</p> : null}
            {styleUpload.error ? (
              <p role="alert" className="error">
                Style upload refused: {styleUpload.error}
              </p>
            ) : null}
            {chosen.length > 0 ? (
              <WeightsControl
                styles={chosen}
                onChange={(key, weight) => {
                  setChosen((current) =>
                    current.map((style) => (style.key === key ? { ...style, weight } : style)),
                  );
                }}
                onRemove={(key) => {
                  setChosen((current) => current.filter((style) => style.key !== key));
                }}
              />
            ) : null}
          </section>

          <section aria-labelledby={`${ids}-settings`}>
            <h2 id={`${ids}-settings`}>3. Settings</h2>
            <div className="field">
              <label htmlFor={`${ids}-model`}>Model</label>
              <select
                id={`${ids}-model`}
                value={model}
                onChange={(event) => {
                  setModel(event.target.value);
                }}
                aria-describedby={`${ids}-model-hint`}
              >
                {aliases.length === 0 ? <option value="default">default</option> : null}
                {aliases.length > 0 ? (
                  <optgroup label="Aliases">
                    {aliases.map((alias) => (
                      <option key={alias} value={alias}>
                        {alias}
                      </option>
                    ))}
                  </optgroup>
                ) : null}
                {versions.length > 0 ? (
                  <optgroup label="Versions">
                    {versions.map((version) => (
                      <option key={version.name} value={version.name}>
                        {version.name} ({version.family})
                      </option>
                    ))}
                  </optgroup>
                ) : null}
              </select>
              <p id={`${ids}-model-hint`} className="hint">
                {modelsError ? `Models: ${modelsError}` : (description ?? "The fast default model.")}
              </p>
            </div>
            <div className="field">
              <label htmlFor={`${ids}-alpha`}>
                Style strength: <output htmlFor={`${ids}-alpha`}>{alpha.toFixed(2)}</output>
              </label>
              <input
                id={`${ids}-alpha`}
                type="range"
                min={0}
                max={1}
                step={0.05}
                value={alpha}
                aria-describedby={`${ids}-alpha-hint`}
                onChange={(event) => {
                  setAlpha(Number(event.target.value));
                }}
              />
              <p id={`${ids}-alpha-hint`} className="hint">
                0 keeps the photo, 1 paints it fully in the style (e.g. 0.6 for a lighter touch).
              </p>
            </div>
            <div className="field checkbox">
              <input
                id={`${ids}-lum`}
                type="checkbox"
                checked={luminanceOnly}
                onChange={(event) => {
                  setLuminanceOnly(event.target.checked);
                }}
                aria-describedby={`${ids}-lum-hint`}
              />
              <label htmlFor={`${ids}-lum`}>Keep the photo&apos;s colours</label>
              <p id={`${ids}-lum-hint`} className="hint">
                Transfers brush strokes and texture only (luminance in YUV).
              </p>
            </div>
            <div className="field checkbox">
              <input
                id={`${ids}-hist`}
                type="checkbox"
                checked={histogramMatch}
                onChange={(event) => {
                  setHistogramMatch(event.target.checked);
                }}
                aria-describedby={`${ids}-hist-hint`}
              />
              <label htmlFor={`${ids}-hist`}>Match the colour histogram</label>
              <p id={`${ids}-hist-hint`} className="hint">
                Shifts the result&apos;s colours toward the photo&apos;s. Press <kbd>R</kbd> to reset
                the settings.
              </p>
            </div>
            <AdvancedControls value={advanced} problem={extra.problem} onChange={setAdvanced} />
          </section>

          <div className="actions">
            <button
              type="button"
              className="primary"
              disabled={problem !== null || running}
              aria-describedby={`${ids}-why`}
              onClick={() => void stylize()}
            >
              {running ? "Stylizing…" : "Stylize"}
            </button>
            {running ? (
              <button type="button" onClick={() => void cancel()}>
                Cancel
              </button>
            ) : null}
            <p id={`${ids}-why`} className="hint">
              {problem ?? "A quick preview comes first, then the full-size result."}
            </p>
            {submitError ? (
              <p role="alert" className="error">
                {submitError}
              </p>
            ) : null}
          </div>
        </div>

        <ResultPane
          api={api}
          headingId={`${ids}-result`}
          before={content?.preview ?? null}
          preview={preview !== IDLE || running ? preview : null}
          full={full !== IDLE || running ? full : null}
        />
      </div>
    </main>
  );
}
