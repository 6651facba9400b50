import { cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { GouacheApi } from "../api/client";
import { Admin } from "./Admin";

afterEach(cleanup);

function json(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status: 200,
    headers: { "content-type": "application/json" },
  });
}

const USAGE = {
  usage: [
    {
      project_id: "prj_team",
      user_id: "usr_ann",
      model_version: "adain.lite0-v1",
      jobs_succeeded: "3",
      jobs_failed: "1",
      jobs_cached: "1",
      output_megapixels: 0.75,
      compute_seconds: 12.34,
      gpu_seconds: 0,
    },
    {
      user_id: "usr_bob",
      model_version: "gatys.lite0-v1",
      jobs_succeeded: "40",
      jobs_failed: "0",
      jobs_cached: "0",
      compute_seconds: 1234.5,
      gpu_seconds: 1001.2,
    },
  ],
};

function api(): GouacheApi {
  const fetchFn = vi.fn((input: RequestInfo | URL) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url === "/v1/auth/token") {
      return Promise.resolve(json({ access_token: "t", token_type: "Bearer", expires_in: 900 }));
    }
    if (url === "/v1/usage") return Promise.resolve(json(USAGE));
    return Promise.resolve(json({ stats: [] }));
  });
  return new GouacheApi("gk_a_b", fetchFn);
}

describe("Admin usage", () => {
  it("shows compute and GPU seconds per project, user and version", async () => {
    render(<Admin api={api()} />);

    const region = await screen.findByRole("region", { name: "Usage per project and user" });
    const headers = within(region)
      .getAllByRole("columnheader")
      .map((cell) => cell.textContent);
    expect(headers).toEqual([
      "Project",
      "User",
      "Version",
      "Succeeded",
      "Failed",
      "Of which cached",
      "Compute",
      "GPU",
      "Last finished",
    ]);
    const rows = within(region).getAllByRole("row").slice(1);
    const cells = rows.map((row) =>
      within(row)
        .getAllByRole("cell")
        .map((cell) => cell.textContent),
    );
    expect(cells[0]?.slice(5, 7)).toEqual(["12.3 s", "0.0 s"]);
    // A record without a project is the user's personal project; large amounts are whole.
    expect(within(rows[1] as HTMLElement).getByRole("rowheader").textContent).toBe("usr_bob");
    expect(cells[1]?.slice(5, 7)).toEqual(["1,235 s", "1,001 s"]);
  });
});
