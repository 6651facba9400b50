import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { WeightsControl } from "./WeightsControl";

afterEach(cleanup);

describe("WeightsControl", () => {
  it("has no slider for a single style", () => {
    render(
      <WeightsControl styles={[{ key: "a", name: "Starry Night", weight: 50 }]} onChange={vi.fn()} onRemove={vi.fn()} />,
    );

    expect(screen.queryByRole("slider")).toBeNull();
    expect(screen.getByText("Starry Night")).toBeTruthy();
  });

  it("labels each slider with its style and shows its share of the mix", () => {
    render(
      <WeightsControl
        styles={[
          { key: "a", name: "Starry Night", weight: 75 },
          { key: "b", name: "The Wave", weight: 25 },
        ]}
        onChange={vi.fn()}
        onRemove={vi.fn()}
      />,
    );

    const starry = screen.getByRole("slider", { name: "Starry Night" });
    expect(starry.getAttribute("aria-valuetext")).toBe("75 percent of the mix");
    expect(screen.getByText("25%")).toBeTruthy();
  });

  it("reports a moved slider and a removed style by key", () => {
    const onChange = vi.fn();
    const onRemove = vi.fn();
    render(
      <WeightsControl
        styles={[
          { key: "a", name: "Starry Night", weight: 50 },
          { key: "b", name: "The Wave", weight: 50 },
        ]}
        onChange={onChange}
        onRemove={onRemove}
      />,
    );

    fireEvent.change(screen.getByRole("slider", { name: "The Wave" }), { target: { value: "80" } });
    fireEvent.click(screen.getByRole("button", { name: "Remove Starry Night" }));

    expect(onChange).toHaveBeenCalledWith("b", 80);
    expect(onRemove).toHaveBeenCalledWith("a");
  });
});
