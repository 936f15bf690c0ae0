/// The page `charlm serve` shows at `/`: one self-contained HTML file (no build step, no CDN).
/// It streams completions from /v1/completions and colours the text by each unit's
/// probability, or by one neuron's activation from /api/trace.
enum PlaygroundPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>charlm playground</title>
        <style>
          body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem; color: #222; }
          h1 { font-size: 1.3rem; margin: .2rem 0 .8rem; } h1 small { color: #777; font-weight: normal; }
          textarea { width: 100%; box-sizing: border-box; font: 14px/1.4 ui-monospace, monospace; }
          fieldset { border: 1px solid #ccc; border-radius: 6px; margin: .6rem 0; padding: .4rem .8rem; }
          label { margin-right: 1rem; white-space: nowrap; } input[type=number] { width: 5.5rem; }
          button { font: inherit; padding: .25rem .9rem; margin-right: .4rem; }
          #out { white-space: pre-wrap; font: 14px/1.5 ui-monospace, monospace; border: 1px solid #ddd; border-radius: 6px;
                 padding: .6rem; min-height: 8rem; background: #fafafa; }
          #out .prompt { color: #555; }
          #status { color: #666; margin: .4rem 0; min-height: 1.2em; }
          #suggestions button { font-size: 12px; margin: .15rem; padding: .1rem .4rem; }
          .legend { font-size: 12px; color: #666; }
        </style>
        </head>
        <body>
        <h1>charlm <small id="model">playground</small></h1>
        <textarea id="prompt" rows="4" placeholder="A prompt to continue (empty: start a new line)"></textarea>
        <fieldset>
          <label>max tokens <input id="max" type="number" min="0" value="300"></label>
          <label>temperature <input id="temperature" type="number" min="0" max="10" step="0.05" value="0.8"></label>
          <label>top-k <input id="topk" type="number" min="0" value="0"></label>
          <label>top-p <input id="topp" type="number" min="0.01" max="1" step="0.01" value="1"></label>
          <label>seed <input id="seed" type="number" placeholder="random"></label>
          <label id="keylabel" hidden>API key <input id="key" type="password"></label>
        </fieldset>
        <button id="generate">Generate</button><button id="stop" disabled>Stop</button>
        <label>colour <select id="mode">
          <option value="plain">plain</option>
          <option value="probability" selected>probability of each character</option>
          <option value="neuron">neuron activation</option>
        </select></label>
        <fieldset id="neuron" hidden>
          <label>layer <select id="layer"></select></label>
          <label>unit <input id="unit" type="number" min="0" value="0"></label>
          <label>state <select id="kind"></select></label>
          <button id="show">Show</button>
          <div class="legend">blue: negative, red: positive. Units that follow simple properties of this text:</div>
          <div id="suggestions"></div>
        </fieldset>
        <div id="status"></div>
        <div id="out"></div>
        <script>
        "use strict";
        const $ = id => document.getElementById(id);
        let units = [];        // {text, p (probability or null), prompt}
        let activations = null; // per unit of `traced`, or null
        let traced = null;      // units as the model read them for the neuron view
        let controller = null;
        // For tests: network reads and screen updates during the last generation.
        window.charlmStats = {reads: 0, paints: 0};

        function headers() {
          const h = {"Content-Type": "application/json"};
          if ($("key").value) h.Authorization = "Bearer " + $("key").value;
          return h;
        }
        async function api(path, body) {
          const res = await fetch(path, {method: body ? "POST" : "GET", headers: headers(),
                                         body: body ? JSON.stringify(body) : undefined,
                                         signal: controller ? controller.signal : undefined});
          if (res.status === 401) $("keylabel").hidden = false;
          return res;
        }
        async function errorText(res) {
          try { return (await res.json()).error.message; } catch (e) { return res.status + " " + res.statusText; }
        }
        function probabilityColour(p) {
          if (p === null || p === undefined) return "";
          const h = Math.round(120 * Math.min(1, p));        // red (unlikely) .. green (likely)
          return "hsla(" + h + ", 85%, 55%, " + (0.15 + 0.55 * (1 - p)).toFixed(2) + ")";
        }
        function activationColour(v, scale) {
          const a = Math.min(1, Math.abs(v) / scale);
          return v >= 0 ? "rgba(220, 40, 40, " + a.toFixed(2) + ")" : "rgba(40, 90, 230, " + a.toFixed(2) + ")";
        }
        function render() {
          const out = $("out");
          out.textContent = "";
          const mode = $("mode").value;
          if (mode === "neuron" && traced && activations) {
            const scale = $("kind").value === "cell" ? Math.max(1e-6, ...activations.map(Math.abs)) : 1;
            traced.forEach((u, i) => {
              const s = document.createElement("span");
              s.textContent = u;
              s.style.backgroundColor = activationColour(activations[i], scale);
              s.title = activations[i].toFixed(3);
              out.appendChild(s);
            });
            return;
          }
          for (const u of units) {
            const s = document.createElement("span");
            s.textContent = u.text;
            if (u.prompt) s.className = "prompt";
            else if (mode === "probability" && u.p !== null) {
              s.style.backgroundColor = probabilityColour(u.p);
              s.title = "p = " + u.p.toFixed(3);
            }
            out.appendChild(s);
          }
        }
        function append(u) {
          units.push(u);
          if ($("mode").value === "neuron") return;
          const s = document.createElement("span");
          s.textContent = u.text;
          if ($("mode").value === "probability" && u.p !== null) {
            s.style.backgroundColor = probabilityColour(u.p);
            s.title = "p = " + u.p.toFixed(3);
          }
          $("out").appendChild(s);
        }
        async function generate() {
          if (controller) controller.abort();
          controller = new AbortController();
          units = []; traced = null; activations = null;
          const prompt = $("prompt").value;
          if (prompt) units.push({text: prompt, p: null, prompt: true});
          render();
          const body = {prompt, max_tokens: +$("max").value, temperature: +$("temperature").value,
                        top_p: +$("topp").value, top_k: +$("topk").value, stream: true, logprobs: 1};
          if ($("seed").value !== "") body.seed = +$("seed").value;
          $("status").textContent = "generating…";
          $("generate").disabled = true; $("stop").disabled = false;
          let generated = 0;
          try {
            const res = await api("/v1/completions", body);
            if (!res.ok) { $("status").textContent = "error: " + await errorText(res); return; }
            const reader = res.body.getReader(), decoder = new TextDecoder();
            let buffer = "";
            window.charlmStats = {reads: 0, paints: 0};
            let lastPaint = -1;
            const paint = () => { if (lastPaint !== units.length) { window.charlmStats.paints++; lastPaint = units.length; }
                                  if (controller) requestAnimationFrame(paint); };
            requestAnimationFrame(paint);
            const signal = controller.signal;
            let yielded = performance.now();
            for (;;) {
              const {done, value} = await reader.read();
              if (done) break;
              window.charlmStats.reads++;
              // Buffered data resolves reads without ever leaving the loop: let the page paint
              // and the Stop button work every frame or so.
              if (performance.now() - yielded > 16) { await new Promise(r => setTimeout(r, 0)); yielded = performance.now(); }
              if (signal.aborted) { reader.cancel().catch(() => {}); throw new DOMException("stopped", "AbortError"); }
              buffer += decoder.decode(value, {stream: true});
              let end;
              while ((end = buffer.indexOf("\n\n")) >= 0) {
                const line = buffer.slice(0, end); buffer = buffer.slice(end + 2);
                if (!line.startsWith("data: ")) continue;
                const data = line.slice(6);
                if (data === "[DONE]") continue;
                const event = JSON.parse(data);
                if (event.error) throw new Error(event.error.message);
                const choice = event.choices[0];
                if (!choice) continue;
                const lp = choice.logprobs;
                // Characters coloured one by one when the units spell the text (a byte-fallback
                // model's byte units do not, one at a time); otherwise the text as it came.
                if (lp && lp.tokens.length && lp.tokens.join("") === choice.text) {
                  lp.tokens.forEach((t, k) => append({text: t, p: Math.exp(lp.token_logprobs[k])}));
                } else if (choice.text) append({text: choice.text, p: null});
                generated += lp ? lp.tokens.length : [...choice.text].length;
              }
            }
            $("status").textContent = "done: " + generated + " characters";
            if ($("mode").value === "neuron") await showNeuron();
          } catch (e) {
            $("status").textContent = e.name === "AbortError" ? "stopped after " + generated + " characters" : "error: " + e;
          } finally {
            $("generate").disabled = false; $("stop").disabled = true; controller = null;
          }
        }
        async function showNeuron() {
          const text = units.map(u => u.text).join("");
          if (!text) { $("status").textContent = "generate some text first"; return; }
          const res = await api("/api/trace", {text, layer: +$("layer").value, unit: +$("unit").value, kind: $("kind").value});
          if (!res.ok) { $("status").textContent = "error: " + await errorText(res); return; }
          const t = await res.json();
          traced = t.units; activations = t.values;
          const box = $("suggestions");
          box.textContent = "";
          for (const s of t.suggested) {
            const b = document.createElement("button");
            b.textContent = s.property + ": layer " + s.layer + " unit " + s.unit + " (" + s.kind + ") r = " + s.correlation.toFixed(2);
            b.onclick = () => { $("layer").value = s.layer; $("unit").value = s.unit; $("kind").value = s.kind; showNeuron(); };
            box.appendChild(b);
          }
          render();
          $("status").textContent = "layer " + $("layer").value + ", unit " + $("unit").value + " (" + $("kind").value + ") over " + traced.length + " characters";
        }
        $("generate").onclick = generate;
        $("stop").onclick = () => { if (controller) controller.abort(); };
        $("show").onclick = showNeuron;
        $("mode").onchange = () => {
          $("neuron").hidden = $("mode").value !== "neuron";
          if ($("mode").value === "neuron" && units.length && !activations) showNeuron(); else render();
        };
        $("prompt").addEventListener("keydown", e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate(); });
        (async () => {
          const res = await api("/v1/models");
          if (!res.ok) { $("status").textContent = res.status === 401 ? "enter the API key" : await errorText(res); return; }
          const m = (await res.json()).data[0];
          const c = m.charlm;
          $("model").textContent = m.id + " · " + c.layers + "×" + c.hidden_size + " " + c.cell + " · " + c.vocabulary_size + " characters";
          for (let l = 0; l < c.layers; l++) $("layer").add(new Option(String(l), String(l)));
          $("layer").value = String(c.layers - 1);
          $("unit").max = c.hidden_size - 1;
          for (const k of (c.cell === "lstm" ? ["cell", "hidden"] : ["hidden"])) $("kind").add(new Option(k, k));
        })();
        </script>
        </body>
        </html>
        """#
}
