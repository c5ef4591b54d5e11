/** The two files of a PEFT adapter folder, as the API takes them. */
export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;
export type AdapterFileName = (typeof ADAPTER_FILES)[number];

function isAdapterFile(name: string): name is AdapterFileName {
  return (ADAPTER_FILES as readonly string[]).includes(name);
}

/** Picks the adapter files out of chosen files (a folder's, or the two files); other files are ignored. */
export function pickAdapterFiles(files: Iterable<File>): Partial<Record<AdapterFileName, File>> {
  const picked: Partial<Record<AdapterFileName, File>> = {};
  for (const file of files) if (isAdapterFile(file.name)) picked[file.name] = file;
  return picked;
}

function entryFile(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function directoryEntries(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  // readEntries answers in batches until an empty one.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}

/** The files of a drop: dropped files as they are, a dropped folder's files at its top level. */
export async function droppedFiles(data: DataTransfer): Promise<File[]> {
  const entries = [...data.items].map((item) => item.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (entries.length === 0) return [...data.files];
  const files: File[] = [];
  for (const entry of entries) {
    if (entry.isFile) files.push(await entryFile(entry as FileSystemFileEntry));
    else if (entry.isDirectory) {
      for (const inner of await directoryEntries(entry as FileSystemDirectoryEntry)) {
        if (inner.isFile && isAdapterFile(inner.name)) files.push(await entryFile(inner as FileSystemFileEntry));
      }
    }
  }
  return files;
}
