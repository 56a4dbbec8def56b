import t from 'tap'
import { readFileSync } from 'node:fs'

// The runbook sends whoever is on call to dashboard panels by name: each name must be one they will find.

const dir = new URL('../../monitoring/', import.meta.url)
const runbook = readFileSync(new URL('runbook.md', dir), 'utf8')
const dashboard = JSON.parse(readFileSync(new URL('dashboard.json', dir), 'utf8')) as { panels: Array<{ type: string, title: string }> }

/** The runbook's *italic* spans, outside code blocks and code spans (`X-CIO-*` is not emphasis); **bold** is not italic. */
const prose = runbook.replace(/^```[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '')
const italics = [...prose.matchAll(/(?<![*\w])\*(?![*\s])([^*\n]+?)(?<!\s)\*(?![*\w])/g)].map(([, name]) => name!)

t.test('every panel name in italics in the runbook is the title of a panel (or row) of the dashboard', async (t) => {
  const titles = new Set(dashboard.panels.map((p) => p.title))
  t.ok(italics.length >= 10, `${italics.length} panel names in the runbook`)
  for (const name of new Set(italics)) t.ok(titles.has(name), `*${name}*`)
})
