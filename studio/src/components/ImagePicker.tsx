import { useId, useState, type DragEvent } from "react";
import { ACCEPTED_TYPES, imageProblem } from "../files";

interface Props {
  label: string;
  hint: string;
  disabled?: boolean;
  onPicked: (file: File) => void;
}

/** A file input that also takes a dropped file; refuses what the API would refuse. */
export function ImagePicker({ label, hint, disabled = false, onPicked }: Props) {
  const [problem, setProblem] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const inputId = useId();
  const hintId = useId();

  function pick(file: File | undefined) {
    if (!file) return;
    const why = imageProblem(file);
    setProblem(why);
    if (why === null) onPicked(file);
  }

  function drop(event: DragEvent) {
    event.preventDefault();
    setDragging(false);
    if (!disabled) pick(event.dataTransfer.files[0]);
  }

  return (
    <div
      className={`picker${dragging ? " dragging" : ""}`}
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => {
        setDragging(false);
      }}
      onDrop={drop}
    >
      <label htmlFor={inputId}>{label}</label>
      <input
        id={inputId}
        type="file"
        accept={ACCEPTED_TYPES.join(",")}
        disabled={disabled}
        aria-describedby={hintId}
        onChange={(event) => {
          pick(event.target.files?.[0]);
          event.target.value = "";
        }}
      />
      <p id={hintId} className="hint">
        {hint}
      </p>
      {problem ? (
        <p role="alert" className="error">
          {problem}
        </p>
      ) : null}
    </div>
  );
}
