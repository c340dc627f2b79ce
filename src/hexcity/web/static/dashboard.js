/* hexcity dashboard: MapLibre GL map of our own roads + live feed (SSE read with fetch). */
"use strict";

(function () {
  const STATE = {
    token: null,
    drivers: new Map(), // id -> [lat, lng, status]
    trips: new Map(), // id -> trip view
    cells: [],
    surge: new Map(), // cell -> surge answer
    kpis: [],
    framesReceived: 0,
    eventsReceived: 0,
    lastRoute: null,
    lastCell: null,
    routePoints: [],
    roadsLoaded: 0,
    activeRoutes: new Map(), // trip id -> {phase: "arriving"|"trip", geometry | null (no route)}
    routeQueue: [], // [{id, phase}] waiting for /route/v1
    routePending: new Set(), // "id:phase" queued or being fetched
    routeFetching: 0,
    routeLookups: 0,
    warehouses: [], // [{id, lat, lng}]
    warehousesNote: "",
    flash: null, // latest commerce panel figures
    flashLeft: [], // the distinct "left" values seen, oldest first (the countdown)
    flashSoldOut: false,
    deliveries: [], // [{plan_id, courier_id, warehouse_id, stops_left, color}] drawn delivery routes
    deliveryStops: 0, // stops still to deliver on the drawn routes
    deliveryPolls: 0,
    deliveriesNote: "",
    ledger: null, // {debits, credits, balanced} in minor units, from the payments panel
  };
  const MAX_EVENTS_SHOWN = 100;
  const MAX_KPI_POINTS = 600;
  const MAX_SURGE_LOOKUPS = 40;
  const MAX_ACTIVE_ROUTES = 150; // drawn trip routes (driver → pickup, pickup → drop-off)
  const MAX_ROUTE_QUEUE = 40; // route lookups waiting; more wait for the next frame
  const MAX_ROUTE_FETCHES = 2; // concurrent /route/v1 calls for active trips
  const MAX_WAREHOUSES = 100;
  const MAX_FLASH_HISTORY = 200;
  const WAREHOUSE_POLL_MS = 15000;
  const DELIVERY_POLL_MS = 5000; // GET /fulfillment/v1/plans?status=active (plans change every 2 simulated min)
  const MAX_DELIVERY_ROUTES = 200; // the endpoint's page limit: one page, bounded
  // one colour per courier (a stable hash of the courier id), distinct from drivers, trips and your route
  const COURIER_COLORS = ["#00796b", "#c77800", "#6b7a00", "#455a64", "#00838f", "#6d4c41", "#8d6e00"];
  const el = (id) => document.getElementById(id);

  function setConn(text, cls) {
    const c = el("conn");
    c.textContent = text;
    c.className = "conn " + (cls || "");
  }

  async function getToken() {
    const r = await fetch("/web/v1/demo/token");
    if (!r.ok) throw new Error("no demo token (" + r.status + "): this page needs a demo server on loopback");
    STATE.token = (await r.json()).token;
  }

  async function api(path, init) {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!STATE.token) await getToken();
      const r = await fetch(path, Object.assign({}, init, { headers: { Authorization: "Bearer " + STATE.token } }));
      if (r.status === 401 && attempt === 0) { STATE.token = null; continue; }
      return r;
    }
    throw new Error("unauthorised");
  }

  // ---- map ---------------------------------------------------------------------------------------
  const fc = (features) => ({ type: "FeatureCollection", features: features });
  const map = new maplibregl.Map({
    container: "map",
    style: {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#f2efe9" } }],
    },
    center: [0, 0],
    zoom: 1,
    attributionControl: false,
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");

  function addLayers() {
    map.addSource("cells", { type: "geojson", data: fc([]) });
    map.addSource("roads", { type: "geojson", data: fc([]) });
    map.addSource("trips", { type: "geojson", data: fc([]) });
    map.addSource("drivers", { type: "geojson", data: fc([]) });
    map.addSource("route", { type: "geojson", data: fc([]) });
    map.addSource("active-routes", { type: "geojson", data: fc([]) });
    map.addSource("warehouses", { type: "geojson", data: fc([]) });
    map.addSource("route-points", { type: "geojson", data: fc([]) });
    map.addSource("deliveries", { type: "geojson", data: fc([]) });
    map.addSource("delivery-stops", { type: "geojson", data: fc([]) });
    map.addSource("cell-selected", { type: "geojson", data: fc([]) });
    map.addLayer({
      id: "cells-fill", type: "fill", source: "cells",
      paint: {
        "fill-color": ["interpolate", ["linear"], ["coalesce", ["get", "multiplier"], 1],
          1, "rgba(255, 214, 102, 0.10)", 1.5, "rgba(245, 150, 30, 0.35)", 3.5, "rgba(190, 40, 0, 0.55)"],
      },
    });
    map.addLayer({ id: "cells-line", type: "line", source: "cells", paint: { "line-color": "#b35900", "line-width": 1, "line-opacity": 0.6 } });
    map.addLayer({ id: "cell-selected", type: "line", source: "cell-selected", paint: { "line-color": "#1a1a1a", "line-width": 3 } });
    map.addLayer({
      id: "roads", type: "line", source: "roads",
      paint: { "line-color": "#7d7d7d", "line-width": ["interpolate", ["linear"], ["zoom"], 10, 0.6, 15, 2.5] },
    });
    const ROUTE_LAYOUT = { "line-cap": "round", "line-join": "round" };
    map.addLayer({
      id: "active-routes-trip", type: "line", source: "active-routes", layout: ROUTE_LAYOUT,
      filter: ["==", ["get", "phase"], "trip"],
      paint: { "line-color": "#c0392b", "line-width": 3, "line-opacity": 0.8 },
    });
    map.addLayer({
      id: "active-routes-pickup", type: "line", source: "active-routes", layout: ROUTE_LAYOUT,
      filter: ["==", ["get", "phase"], "arriving"],
      paint: { "line-color": "#6a1b9a", "line-width": 3, "line-opacity": 0.85, "line-dasharray": [1, 1.5] },
    });
    map.addLayer({
      id: "delivery-routes", type: "line", source: "deliveries", layout: ROUTE_LAYOUT,
      paint: { "line-color": ["get", "color"], "line-width": 2.5, "line-opacity": 0.8, "line-dasharray": [2, 1.2] },
    });
    map.addLayer({
      id: "delivery-stops", type: "circle", source: "delivery-stops",
      paint: { "circle-radius": 4, "circle-color": ["get", "color"], "circle-stroke-width": 1.5, "circle-stroke-color": "#ffffff" },
    });
    map.addLayer({
      id: "warehouses", type: "circle", source: "warehouses",
      paint: { "circle-radius": 9, "circle-color": "#7a4b00", "circle-stroke-width": 3, "circle-stroke-color": "#ffffff" },
    });
    map.addLayer({ id: "route", type: "line", source: "route", paint: { "line-color": "#0b5cad", "line-width": 5, "line-opacity": 0.85 } });
    map.addLayer({
      id: "trips", type: "circle", source: "trips",
      paint: { "circle-radius": 6, "circle-color": "#ffffff", "circle-stroke-width": 3, "circle-stroke-color": "#6a1b9a" },
      filter: ["in", ["get", "status"], ["literal", ["requested", "matched"]]],
    });
    map.addLayer({
      id: "drivers", type: "circle", source: "drivers",
      paint: {
        "circle-radius": 5,
        "circle-color": ["match", ["get", "status"], "busy", "#c0392b", "#1b7f3b"],
        "circle-stroke-width": 1, "circle-stroke-color": "#ffffff",
      },
    });
    map.addLayer({ id: "route-points", type: "circle", source: "route-points", paint: { "circle-radius": 7, "circle-color": "#0b5cad", "circle-stroke-width": 2, "circle-stroke-color": "#fff" } });
  }

  async function loadRoads() {
    const r = await api("/web/v1/roads.geojson?profile=car");
    if (!r.ok) throw new Error("roads: HTTP " + r.status);
    const data = await r.json();
    map.getSource("roads").setData(data);
    STATE.roadsLoaded = data.features.length;
    const b = data.bbox;
    map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 20, duration: 0 });
  }

  function renderDrivers() {
    const features = [];
    for (const [id, d] of STATE.drivers) {
      features.push({ type: "Feature", geometry: { type: "Point", coordinates: [d[2], d[1]] }, properties: { id: id, status: d[3] } });
    }
    map.getSource("drivers").setData(fc(features));
  }

  function renderTrips() {
    const features = [];
    for (const t of STATE.trips.values()) {
      features.push({ type: "Feature", geometry: { type: "Point", coordinates: t.pickup }, properties: { id: t.trip_id, status: t.status } });
    }
    map.getSource("trips").setData(fc(features));
  }

  function renderCells() {
    const features = STATE.cells.map((c) => {
      const s = STATE.surge.get(c.cell);
      return {
        type: "Feature",
        geometry: { type: "Polygon", coordinates: [c.boundary] },
        properties: { cell: c.cell, supply: c.supply, demand: c.demand, multiplier: s ? s.multiplier : 1 },
      };
    });
    map.getSource("cells").setData(fc(features));
  }

  async function refreshSurge() {
    const cells = STATE.cells.slice(0, MAX_SURGE_LOOKUPS);
    for (const c of cells) {
      const ring = c.boundary.slice(0, -1);
      const lng = ring.reduce((a, p) => a + p[0], 0) / ring.length;
      const lat = ring.reduce((a, p) => a + p[1], 0) / ring.length;
      const r = await api("/dispatch/v1/surge?lat=" + lat.toFixed(6) + "&lng=" + lng.toFixed(6));
      if (r.ok) STATE.surge.set(c.cell, await r.json());
    }
    renderCells();
  }

  // ---- active trip routes (bounded: MAX_ACTIVE_ROUTES drawn, MAX_ROUTE_FETCHES at a time) --------
  function tripPhase(t) {
    if (t.status === "in_trip") return "trip";
    if ((t.status === "driver_arriving" || t.status === "matched") && t.driver_id) return "arriving";
    return null;
  }

  function routeEnds(t, phase) {
    if (phase === "trip") return [t.pickup, t.dropoff];
    const d = STATE.drivers.get(t.driver_id);
    return d ? [[d[2], d[1]], t.pickup] : null; // the driver's last position → the pickup
  }

  function syncActiveRoutes() {
    for (const [id, r] of STATE.activeRoutes) {
      const t = STATE.trips.get(id);
      if (!t || tripPhase(t) !== r.phase) STATE.activeRoutes.delete(id);
    }
    STATE.routeQueue = STATE.routeQueue.filter((q) => {
      const t = STATE.trips.get(q.id);
      const keep = t && tripPhase(t) === q.phase;
      if (!keep) STATE.routePending.delete(q.id + ":" + q.phase);
      return keep;
    });
    for (const t of STATE.trips.values()) {
      if (STATE.activeRoutes.size + STATE.routePending.size >= MAX_ACTIVE_ROUTES) break;
      if (STATE.routeQueue.length >= MAX_ROUTE_QUEUE) break;
      const phase = tripPhase(t);
      if (!phase || STATE.activeRoutes.has(t.trip_id) || STATE.routePending.has(t.trip_id + ":" + phase)) continue;
      STATE.routePending.add(t.trip_id + ":" + phase);
      STATE.routeQueue.push({ id: t.trip_id, phase: phase });
    }
    pumpRoutes();
    renderActiveRoutes();
  }

  function pumpRoutes() {
    while (STATE.routeFetching < MAX_ROUTE_FETCHES && STATE.routeQueue.length > 0) {
      const q = STATE.routeQueue.shift();
      const t = STATE.trips.get(q.id);
      const ends = t && tripPhase(t) === q.phase ? routeEnds(t, q.phase) : null;
      if (!ends) { STATE.routePending.delete(q.id + ":" + q.phase); continue; } // retried on a later frame
      STATE.routeFetching += 1;
      fetchTripRoute(q, ends).catch(() => null).then((geometry) => {
        STATE.routeFetching -= 1;
        STATE.routePending.delete(q.id + ":" + q.phase);
        const now = STATE.trips.get(q.id);
        if (now && tripPhase(now) === q.phase) {
          STATE.activeRoutes.set(q.id, { phase: q.phase, geometry: geometry });
          renderActiveRoutes();
        }
        pumpRoutes();
      });
    }
  }

  async function fetchTripRoute(q, ends) {
    const [a, b] = ends;
    STATE.routeLookups += 1;
    const r = await api("/route/v1/driving/" + a[0].toFixed(6) + "," + a[1].toFixed(6) + ";" + b[0].toFixed(6) + "," + b[1].toFixed(6) + "?overview=full&geometries=geojson");
    if (!r.ok) return null; // no route (e.g. unsnappable point): the trip is drawn without one
    const body = await r.json();
    return body.code === "Ok" && body.routes.length > 0 ? body.routes[0].geometry : null;
  }

  function renderActiveRoutes() {
    const features = [];
    for (const [id, r] of STATE.activeRoutes) {
      if (r.geometry) features.push({ type: "Feature", geometry: r.geometry, properties: { trip: id, phase: r.phase } });
    }
    map.getSource("active-routes").setData(fc(features));
    const n = el("routes-count");
    n.textContent = features.length + (features.length === 1 ? " active route" : " active routes");
  }

  // ---- warehouses (fulfillment API; delivery plans are not readable over the API yet) -----------
  function tokenScopes() {
    try {
      const part = STATE.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return new Set(String(JSON.parse(atob(part)).scope || "").split(" "));
    } catch (err) {
      return new Set();
    }
  }

  async function loadWarehouses() {
    if (!STATE.token) await getToken();
    if (!tokenScopes().has("fulfillment:read")) { // ask only when allowed: a 403 would be logged
      STATE.warehousesNote = "warehouses hidden: the dashboard token may not read fulfillment";
      el("warehouse-note").textContent = STATE.warehousesNote;
      return false;
    }
    const r = await api("/fulfillment/v1/warehouses?limit=" + MAX_WAREHOUSES);
    if (!r.ok) {
      STATE.warehousesNote = r.status === 403 ? "warehouses hidden: this token may not read fulfillment"
        : r.status === 404 ? "warehouses: fulfillment is not running" : "warehouses: HTTP " + r.status;
      el("warehouse-note").textContent = STATE.warehousesNote;
      return r.status !== 403 && r.status !== 404; // keep polling only when it may still work
    }
    const body = await r.json();
    STATE.warehouses = body.items.slice(0, MAX_WAREHOUSES).map((w) => ({ id: w.id, lat: w.location.lat, lng: w.location.lng }));
    STATE.warehousesNote = "";
    map.getSource("warehouses").setData(fc(STATE.warehouses.map((w) => ({
      type: "Feature", geometry: { type: "Point", coordinates: [w.lng, w.lat] }, properties: { id: w.id },
    }))));
    el("warehouse-note").textContent = STATE.warehouses.length + (STATE.warehouses.length === 1 ? " warehouse" : " warehouses");
    return true;
  }

  async function pollWarehouses() {
    let again = true;
    try { again = await loadWarehouses(); } catch (err) { again = true; }
    if (again) setTimeout(pollWarehouses, WAREHOUSE_POLL_MS);
  }

  // ---- delivery routes (fulfillment's active last-mile plans, polled) ---------------------------
  const courierColors = new Map(); // courier id -> colour, given in order of first sight (bounded)
  function courierColor(courierId) {
    let c = courierColors.get(courierId);
    if (c === undefined) {
      if (courierColors.size >= 1000) courierColors.clear();
      c = COURIER_COLORS[courierColors.size % COURIER_COLORS.length];
      courierColors.set(courierId, c);
    }
    return c;
  }

  function showDeliveries(body) {
    const routes = [], stops = [];
    const features = body.features.slice(0, MAX_DELIVERY_ROUTES);
    for (const id of features.map((f) => f.properties.courier_id).sort()) courierColor(id);
    for (const f of features) {
      const p = f.properties;
      if (!f.geometry || p.stops_left < 1) continue; // nothing left to drive
      const color = courierColor(p.courier_id);
      routes.push({ type: "Feature", geometry: f.geometry, properties: { plan: p.plan_id, courier: p.courier_id, warehouse: p.warehouse_id, color: color } });
      for (const st of p.stops) {
        if (st.status !== "planned") continue;
        stops.push({ type: "Feature", geometry: { type: "Point", coordinates: [st.lng, st.lat] }, properties: { stop: st.stop_id, plan: p.plan_id, color: color } });
      }
    }
    map.getSource("deliveries").setData(fc(routes));
    map.getSource("delivery-stops").setData(fc(stops));
    STATE.deliveries = routes.map((r) => ({ plan_id: r.properties.plan, courier_id: r.properties.courier, warehouse_id: r.properties.warehouse, color: r.properties.color }));
    STATE.deliveryStops = stops.length;
    const couriers = new Set(STATE.deliveries.map((d) => d.courier_id)).size;
    STATE.deliveriesNote = routes.length + (routes.length === 1 ? " delivery route" : " delivery routes") + " (" + couriers + (couriers === 1 ? " courier, " : " couriers, ") + stops.length + " stops)" + (body.next_after ? ", first " + MAX_DELIVERY_ROUTES + " shown" : "");
    el("deliveries-count").textContent = STATE.deliveriesNote;
  }

  async function loadDeliveries() {
    if (!STATE.token) await getToken();
    if (!tokenScopes().has("fulfillment:read")) {
      el("deliveries-count").textContent = STATE.deliveriesNote = "delivery routes hidden: the dashboard token may not read fulfillment";
      return false;
    }
    const r = await api("/fulfillment/v1/plans?status=active&limit=" + MAX_DELIVERY_ROUTES);
    STATE.deliveryPolls += 1;
    if (!r.ok) {
      el("deliveries-count").textContent = STATE.deliveriesNote = r.status === 404 ? "delivery routes: fulfillment is not running" : "delivery routes: HTTP " + r.status;
      return r.status !== 403 && r.status !== 404;
    }
    showDeliveries(await r.json());
    return true;
  }

  async function pollDeliveries() {
    let again = true;
    try { again = await loadDeliveries(); } catch (err) { again = true; }
    if (again) setTimeout(pollDeliveries, DELIVERY_POLL_MS);
  }

  // ---- flash-sale console -----------------------------------------------------------------------
  const FLASH_LABELS = {
    units: "Stock at the start", left: "Units left", sold: "Units sold (orders confirmed)",
    admissions: "Admissions", orders: "Orders", buyers: "Buyers in the crowd", attempts: "Purchase attempts",
    rate_limited: "Held back (rate limit, waiting room)", told_sold_out: "Buyers told “sold out”", oversold: "Oversold",
  };

  function renderFlash(panels) {
    const p = panels && panels.commerce;
    const box = el("flash");
    const stateEl = el("flash-state");
    const data = p && p.state === "running" ? p.data : null;
    if (!data || data.units === undefined) {
      const text = !p || p.state === "not_running" ? "No flash sale: commerce is not running."
        : data ? "Flash sale: " + data.state : "Flash sale: " + p.state;
      if (stateEl.textContent !== text) stateEl.textContent = text;
      return;
    }
    STATE.flash = data;
    const left = typeof data.left === "number" ? data.left : null;
    if (left !== null && STATE.flashLeft[STATE.flashLeft.length - 1] !== left) {
      STATE.flashLeft.push(left);
      if (STATE.flashLeft.length > MAX_FLASH_HISTORY) STATE.flashLeft.shift();
    }
    const soldOut = data.state === "sold out" && left === 0;
    STATE.flashSoldOut = STATE.flashSoldOut || soldOut;
    box.dataset.state = soldOut ? "sold_out" : String(data.state).startsWith("opens") ? "scheduled" : String(data.state);
    const text = soldOut ? "SOLD OUT: all " + data.units + " units sold" : "Flash sale " + data.state;
    if (stateEl.textContent !== text) stateEl.textContent = text; // announce changes only
    const bar = el("flash-stock");
    bar.max = data.units; bar.value = left === null ? data.units : left;
    bar.setAttribute("aria-valuetext", (left === null ? "?" : left) + " of " + data.units + " units left");
    el("flash-stock-text").textContent = (left === null ? "?" : left) + " / " + data.units + " left";
    const dl = el("flash-figures");
    dl.replaceChildren();
    for (const [k, label] of Object.entries(FLASH_LABELS)) {
      if (data[k] === undefined || data[k] === null) continue;
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.textContent = String(data[k]); dd.dataset.flash = k;
      dl.append(dt, dd);
    }
  }

  // ---- route and cell clicks ---------------------------------------------------------------------
  function fmtDuration(s) {
    const m = Math.floor(s / 60);
    return m > 0 ? m + " min " + Math.round(s - m * 60) + " s" : Math.round(s) + " s";
  }
  function fmtDistance(m) { return m >= 1000 ? (m / 1000).toFixed(2) + " km" : Math.round(m) + " m"; }

  async function findRoute(a, b) {
    const out = el("route-result");
    out.textContent = "routing…";
    const path = "/route/v1/driving/" + a[0].toFixed(6) + "," + a[1].toFixed(6) + ";" + b[0].toFixed(6) + "," + b[1].toFixed(6) + "?overview=full&geometries=geojson";
    const r = await api(path);
    const body = await r.json();
    if (!r.ok || body.code !== "Ok") {
      out.textContent = "No route: " + (body.message || body.code || r.status);
      STATE.lastRoute = { error: body.code || r.status };
      return;
    }
    const route = body.routes[0];
    map.getSource("route").setData(fc([{ type: "Feature", geometry: route.geometry, properties: {} }]));
    STATE.lastRoute = { duration_s: route.duration, distance_m: route.distance };
    out.textContent = "Duration " + fmtDuration(route.duration) + " · Distance " + fmtDistance(route.distance);
    out.dataset.durationS = String(route.duration);
    out.dataset.distanceM = String(route.distance);
  }

  function setRoutePoints() {
    map.getSource("route-points").setData(fc(STATE.routePoints.map((p) => ({ type: "Feature", geometry: { type: "Point", coordinates: p }, properties: {} }))));
    const [a, b] = STATE.routePoints;
    el("route-from").value = a ? a[1].toFixed(5) + ", " + a[0].toFixed(5) : "";
    el("route-to").value = b ? b[1].toFixed(5) + ", " + b[0].toFixed(5) : "";
  }

  let cellPopup = null;

  async function inspectCell(lng, lat) {
    const out = el("cell-result");
    const r = await api("/dispatch/v1/surge?lat=" + lat.toFixed(6) + "&lng=" + lng.toFixed(6));
    const body = await r.json();
    if (!r.ok) { out.textContent = "Cell: " + (body.message || r.status); return; }
    STATE.lastCell = body;
    STATE.surge.set(body.cell, body);
    const surge = "×" + body.multiplier + (body.frozen ? " (frozen)" : "");
    out.textContent = "Cell " + body.cell + ": supply " + body.supply + ", demand " + body.demand + ", surge " + surge;
    out.dataset.supply = String(body.supply); out.dataset.demand = String(body.demand); out.dataset.multiplier = String(body.multiplier);
    // the same figures in a popup at the click (text only; the side panel's status line is announced)
    const box = document.createElement("div");
    box.className = "cell-popup";
    const h = document.createElement("strong"); h.textContent = "Surge cell " + body.cell;
    const dl = document.createElement("dl");
    for (const [label, value, key] of [["Supply (drivers available)", body.supply, "supply"], ["Demand (riders waiting)", body.demand, "demand"], ["Surge", surge, "multiplier"]]) {
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.textContent = String(value); dd.dataset.cell = key;
      dl.append(dt, dd);
    }
    box.append(h, dl);
    if (cellPopup) cellPopup.remove();
    cellPopup = new maplibregl.Popup({ closeButton: true, closeOnClick: false, focusAfterOpen: false, maxWidth: "260px" })
      .setLngLat([lng, lat]).setDOMContent(box).addTo(map);
    const ring = cellRing(body.cell);
    map.getSource("cell-selected").setData(fc(ring.length >= 4 ? [{ type: "Feature", geometry: { type: "Polygon", coordinates: [ring] }, properties: { cell: body.cell } }] : []));
    renderCells();
  }

  // the ring of a cell: from the live feed's cells when listed, else none (only the popup shows)
  function cellRing(cell) {
    const c = STATE.cells.find((x) => x.cell === cell);
    return c ? c.boundary : [];
  }

  function mode() { return document.querySelector("input[name=mode]:checked").value; }

  function pick(p) {
    if (mode() === "cell") { inspectCell(p[0], p[1]).catch(report); return; }
    if (STATE.routePoints.length >= 2) STATE.routePoints = [];
    STATE.routePoints.push(p);
    setRoutePoints();
    if (STATE.routePoints.length === 2) findRoute(STATE.routePoints[0], STATE.routePoints[1]).catch(report);
    else el("route-result").textContent = "Start set; click the destination.";
  }
  map.on("click", (e) => pick([e.lngLat.lng, e.lngLat.lat]));
  // keyboard: with the map focused, arrows pan, +/- zoom (MapLibre) and Enter picks the map's centre
  el("map").addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || (ev.target !== el("map") && ev.target !== map.getCanvas())) return; // not the zoom buttons or popup
    ev.preventDefault();
    const c = map.getCenter();
    pick([c.lng, c.lat]);
  });

  function parseLatLng(text) {
    const parts = text.split(",").map((s) => Number(s.trim()));
    if (parts.length !== 2 || parts.some((x) => !Number.isFinite(x))) return null;
    return [parts[1], parts[0]];
  }
  el("route-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const a = parseLatLng(el("route-from").value), b = parseLatLng(el("route-to").value);
    if (!a || !b) { el("route-result").textContent = "Enter both points as: latitude, longitude"; return; }
    STATE.routePoints = [a, b];
    setRoutePoints();
    findRoute(a, b).catch(report);
  });
  el("route-clear").addEventListener("click", () => {
    STATE.routePoints = [];
    setRoutePoints();
    map.getSource("route").setData(fc([]));
    el("route-result").textContent = "Click two points on the map.";
  });

  // ---- panels ------------------------------------------------------------------------------------
  const KPI_LABELS = {
    drivers_online: "Drivers available", drivers_busy: "Drivers on a trip", trips_active: "Active trips",
    trips_waiting: "Riders waiting", trips_requested: "Trips requested", trips_completed: "Trips completed",
    trips_cancelled: "Trips cancelled", offers: "Offers made", mean_pickup_eta_s: "Mean offered pickup ETA (s)",
  };

  function renderKpis() {
    const last = STATE.kpis[STATE.kpis.length - 1];
    if (!last) return;
    const dl = el("kpi-now");
    dl.replaceChildren();
    for (const [k, label] of Object.entries(KPI_LABELS)) {
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.textContent = last[k] === null || last[k] === undefined ? "–" : String(last[k]);
      dd.dataset.kpi = k;
      dl.append(dt, dd);
    }
    drawChart();
  }

  function drawChart() {
    const canvas = el("kpi-chart");
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 18;
    ctx.clearRect(0, 0, w, h);
    const series = [["drivers_online", "#1b7f3b"], ["drivers_busy", "#c0392b"], ["trips_active", "#0b5cad"], ["trips_waiting", "#6a1b9a"]];
    const pts = STATE.kpis;
    if (pts.length < 2) return;
    let max = 1;
    for (const p of pts) for (const [k] of series) max = Math.max(max, p[k] || 0);
    ctx.fillStyle = "#4a4a4a"; ctx.font = "11px system-ui";
    ctx.fillText(String(max), 2, 11); ctx.fillText("0", 2, h - 4);
    ctx.strokeStyle = "#c8c8c8"; ctx.beginPath(); ctx.moveTo(pad, h - pad); ctx.lineTo(w, h - pad); ctx.stroke();
    for (const [k, color] of series) {
      ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
      pts.forEach((p, i) => {
        const x = pad + (i / (pts.length - 1)) * (w - pad - 2);
        const y = h - pad - ((p[k] || 0) / max) * (h - pad - 6);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
  }

  // the ledger's trial balance: accounts (by kind) with a debit balance (< 0: more debited than
  // credited) against those with a credit balance; every transfer debits one and credits another,
  // so the two totals are equal (integer minor units parsed from the panel's "-12.34 EUR" strings)
  const MONEY = /^(-?)(\d+)\.(\d{2}) ([A-Z]{3})$/;
  function ledgerCheck(data) {
    let debits = 0, credits = 0, currency = "";
    for (const [k, v] of Object.entries(data)) {
      const m = k === "sum of all balances" ? null : MONEY.exec(String(v));
      if (!m) continue;
      const minor = Number(m[2]) * 100 + Number(m[3]);
      currency = m[4];
      if (m[1]) debits += minor; else credits += minor;
    }
    if (!currency) return null;
    return { debits: debits, credits: credits, currency: currency, balanced: debits === credits };
  }
  function fmtMinor(minor, currency) { return Math.floor(minor / 100) + "." + String(minor % 100).padStart(2, "0") + " " + currency; }

  function renderPanels(panels) {
    const root = el("panels");
    root.replaceChildren();
    for (const [name, p] of Object.entries(panels || {})) {
      const div = document.createElement("div");
      div.className = "module"; div.dataset.panel = name; div.dataset.state = p.state;
      const h3 = document.createElement("h3");
      const badge = document.createElement("span");
      badge.className = "badge " + p.state;
      badge.textContent = p.state === "running" ? "running" : p.state === "error" ? "error" : "not running";
      h3.append(document.createTextNode(p.title), badge);
      div.append(h3);
      if (p.data) {
        const table = document.createElement("table");
        for (const [k, v] of Object.entries(p.data)) {
          const tr = document.createElement("tr");
          const a = document.createElement("td"); a.textContent = k.replace(/_/g, " ");
          const b = document.createElement("td"); b.textContent = typeof v === "object" ? JSON.stringify(v) : String(v);
          tr.append(a, b); table.append(tr);
        }
        div.append(table);
        const check = name === "payments" ? ledgerCheck(p.data) : null;
        if (check) {
          STATE.ledger = check;
          const line = document.createElement("p");
          line.className = "ledger-check"; line.dataset.balanced = check.balanced ? "yes" : "no";
          line.textContent = "Debits " + fmtMinor(check.debits, check.currency) + (check.balanced ? " = " : " ≠ ") + "credits " + fmtMinor(check.credits, check.currency) + (check.balanced ? " ✓ balanced" : " ✗ NOT balanced");
          div.insertBefore(line, table);
        }
      }
      root.append(div);
    }
  }

  function addEvents(events) {
    const ol = el("events");
    for (const e of events) {
      STATE.eventsReceived += 1;
      const li = document.createElement("li");
      const t = document.createElement("time");
      const d = new Date(e.t * 1000);
      t.dateTime = d.toISOString(); t.textContent = d.toLocaleTimeString();
      li.append(t, document.createTextNode(e.text));
      li.dataset.topic = e.topic;
      ol.prepend(li);
    }
    while (ol.children.length > MAX_EVENTS_SHOWN) ol.lastElementChild.remove();
    el("event-count").textContent = STATE.eventsReceived + " events";
  }

  // ---- live feed ---------------------------------------------------------------------------------
  function applyFrame(type, f) {
    STATE.framesReceived += 1;
    if (type === "snapshot") {
      STATE.drivers.clear(); STATE.trips.clear();
      for (const d of f.drivers) STATE.drivers.set(d[0], d);
      for (const t of f.trips) STATE.trips.set(t.trip_id, t);
      STATE.kpis = f.kpis.slice(-MAX_KPI_POINTS);
      el("events").replaceChildren();
      addEvents(f.events);
    } else if (type === "tick") {
      for (const d of f.drivers) STATE.drivers.set(d[0], d);
      for (const id of f.gone) STATE.drivers.delete(id);
      for (const t of f.trips) STATE.trips.set(t.trip_id, t);
      for (const id of f.ended) STATE.trips.delete(id);
      STATE.kpis.push(f.kpi);
      if (STATE.kpis.length > MAX_KPI_POINTS) STATE.kpis.shift();
      addEvents(f.events);
    } else {
      return;
    }
    STATE.cells = f.cells;
    renderDrivers(); renderTrips(); renderCells(); renderKpis(); renderPanels(f.panels); renderFlash(f.panels);
    syncActiveRoutes();
  }

  async function streamLive() {
    for (;;) {
      try {
        const r = await api("/web/v1/live");
        if (!r.ok || !r.body) throw new Error("live: HTTP " + r.status);
        setConn("live", "ok");
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
            let type = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) type = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data) applyFrame(type, JSON.parse(data));
          }
        }
        setConn("live feed ended; reconnecting…", "bad");
      } catch (err) {
        setConn("disconnected (" + err.message + "); retrying…", "bad");
      }
      await new Promise((res) => setTimeout(res, 2000));
    }
  }

  function report(err) {
    el("route-result").textContent = "Error: " + err.message;
  }

  map.on("load", async () => {
    addLayers();
    try {
      await loadRoads();
    } catch (err) {
      setConn(err.message, "bad");
      return;
    }
    streamLive();
    pollWarehouses();
    pollDeliveries();
    setInterval(() => { refreshSurge().catch(() => {}); }, 5000);
  });

  window.hexcity = { map: map, state: STATE };
})();
