import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SignIn } from "./SignIn";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

describe("SignIn", () => {
  it("shows auth's own refusal and stays on the form", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(() => Promise.resolve(answer(401, { code: 16, message: "API key revoked", details: [] }))),
    );
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);

    fireEvent.change(screen.getByLabelText("API key"), { target: { value: "gk_a_b" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));

    expect((await screen.findByRole("alert")).textContent).toBe("API key revoked (sign in again)");
    expect(screen.getByLabelText("API key").getAttribute("aria-invalid")).toBe("true");
    expect(onSignedIn).not.toHaveBeenCalled();
  });

  it("asks for a key before calling anything", () => {
    const fetchSpy = vi.fn();
    vi.stubGlobal("fetch", fetchSpy);
    render(<SignIn onSignedIn={vi.fn()} />);

    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));

    expect(screen.getByRole("alert").textContent).toBe("enter an API key");
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("signs in with a key the API accepts, reporting who it is", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn((url: string) =>
        Promise.resolve(
          url === "/v1/auth/token"
            ? answer(200, { access_token: "t", token_type: "Bearer", expires_in: 900, scope: "" })
            : answer(200, { user_id: "u1", email: "ada@example.com", role: "admin", scopes: [] }),
        ),
      ),
    );
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);

    fireEvent.change(screen.getByLabelText("API key"), { target: { value: " gk_a_b " } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));

    await vi.waitFor(() => {
      expect(onSignedIn).toHaveBeenCalledTimes(1);
    });
    const [api, who] = onSignedIn.mock.calls[0] as [{ apiKey: string }, { email: string }];
    expect(api.apiKey).toBe("gk_a_b");
    expect(who.email).toBe("ada@example.com");
  });
});
