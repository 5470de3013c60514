// Preact with htm: components as tagged templates, no build-time JSX.
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);
