"""Everything the server holds, built once from the settings and shared by pages and the API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .attachments.service import AttachmentService
from .audio.engines import SpeechEngines, speech_engine, voice_engine
from .audio.transcripts import TranscriptService
from .chat.conversations import ConversationService
from .chat.engine import ChatEngines, chat_engine
from .chat.exchange import ConversationExchange
from .core.config import Settings
from .core.errors import AppError, ErrorCode
from .images.engine import ImageEngines, image_engine
from .images.service import ImageService
from .knowledge.embedder import EmbeddingEngines, embedding_engine
from .knowledge.service import KnowledgeService
from .knowledge.store import KnowledgeStore
from .models.manager import ModelManager
from .move.archive import archive_applier, archive_writer
from .move.service import Moves
from .remote.service import RemoteEngines
from .runtime.host import EngineHost
from .runtime.residency import MemoryBudget, ResidencyManager
from .security.certs import LocalCA
from .security.devices import DeviceStore
from .security.keys import KeyStore
from .security.owner import OwnerCredential, load_or_create_token
from .security.pairing import Pairing
from .security.ratelimit import FailureLimiter
from .security.sharing import Sharing
from .storage.attachments import AttachmentStore
from .storage.backup import StagedRestore, apply_staged, recover_interrupted_restore
from .storage.backup_folder import Backups
from .storage.conversations import ConversationStore
from .storage.data_lock import DataFolderBusy, DataLock
from .storage.db import Database
from .storage.images import ImageStore
from .storage.media import MediaStore
from .storage.projects import ProjectStore
from .storage.transcripts import TranscriptStore

__all__ = ["Services"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class Services:
    settings: Settings
    db: Database
    store: ConversationStore
    projects: ProjectStore
    models: ModelManager
    residency: ResidencyManager
    chat: EngineHost
    """The local language-model engine (chat and vision models)."""
    remote: RemoteEngines
    """The engine servers the owner added (other machines with OpenAI's API) and their models."""
    answers: ChatEngines
    """What answers go through: the local engine, or a server's for its models."""
    conversations: ConversationService
    exchange: ConversationExchange
    """Export and import of conversations (Markdown, gridless JSON, ChatGPT, Open WebUI)."""
    owner: OwnerCredential
    media: MediaStore
    attachments: AttachmentService
    images: ImageService
    speech: SpeechEngines
    """The speech models (dictation, recordings): a server's when one is marked for it and answers, else
    this device's."""
    voice: EngineHost
    embeddings: EmbeddingEngines
    """The embedding models (documents' passages and queries): the local engine, or a server's."""
    knowledge: KnowledgeService
    """Collections of documents, their indexing and search."""
    transcripts: TranscriptService
    moves: Moves
    """Moving to a new device: the offer this device makes, the pull it runs."""
    devices: DeviceStore
    keys: KeyStore
    """Keys the owner made for other apps."""
    pairing: Pairing
    certs: LocalCA
    backups: Backups
    """Backups written on the server for the Backup page."""
    sharing: Sharing | None = None
    """Set by the web layer, which owns the application the LAN listener serves."""
    _swap: asyncio.Lock = field(default_factory=asyncio.Lock)
    _lock: DataLock | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the database is open: the web framework runs start-up hooks as background
    tasks, so requests that arrive first wait on this instead of racing them."""

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.db_path)
        store = ConversationStore(db)
        projects = ProjectStore(db)
        residency = ResidencyManager(MemoryBudget(fraction=settings.memory_fraction,
                                                  fixed_bytes=settings.memory_budget_bytes),
                                     idle_unload_s=settings.idle_unload_s)
        models = ModelManager(settings, db, residency)
        chat = chat_engine(settings, models, residency)
        remote = RemoteEngines(db, settings)
        answers = ChatEngines(chat, remote, models)
        devices = DeviceStore(db, settings.device_idle_s)
        media = MediaStore(settings.media_dir)
        speech = SpeechEngines(speech_engine(settings, models, residency), remote)
        attachments = AttachmentService(settings, AttachmentStore(db), media)
        images = ImageService(settings, ImageEngines(image_engine(settings, models, residency), remote),
                              ImageStore(db), media, attachments.store)
        embeddings = EmbeddingEngines(embedding_engine(settings, models, residency), remote, models)
        knowledge = KnowledgeService(settings, KnowledgeStore(db), media, embeddings)
        return cls(media=media, attachments=attachments, images=images, speech=speech, embeddings=embeddings,
                   knowledge=knowledge,
                   voice=voice_engine(settings, models, residency),
                   transcripts=TranscriptService(settings, TranscriptStore(db), media, speech),
                   settings=settings, db=db, store=store, models=models, residency=residency, chat=chat,
                   remote=remote, answers=answers,
                   conversations=ConversationService(store, answers, models, settings.context_length, attachments,
                                                     images, projects, knowledge),
                   projects=projects, exchange=ConversationExchange(store, attachments, projects),
                   owner=OwnerCredential(load_or_create_token(settings.data_dir, settings.token)),
                   devices=devices, keys=KeyStore(db),
                   pairing=Pairing(devices, FailureLimiter(), settings.pairing_code_ttl_s),
                   certs=LocalCA(settings.tls_dir), backups=Backups(settings),
                   moves=Moves.build(settings.data_dir, models, write_archive=archive_writer(settings),
                                     apply_archive=None))

    def __post_init__(self) -> None:
        # a move's archive is applied by the live restore, which restarts these services
        self.moves.pulls.apply_archive = archive_applier(self.settings, self.restore)

    def share(self) -> Sharing:
        if self.sharing is None:
            raise AppError(ErrorCode.INTERNAL, "sharing is not set up (the web layer provides it)")
        return self.sharing

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._lock or DataLock(self.settings.data_dir)
        try:
            self._lock.acquire()
        except DataFolderBusy as exc:
            raise RuntimeError(str(exc)) from None
        outcome = await asyncio.to_thread(recover_interrupted_restore, self.settings)
        if outcome is not None:
            log.warning("a restore cut off by the last shutdown was %s", outcome)
        await asyncio.to_thread(self.backups.clean)
        await self._open()
        await self.moves.start()
        self.started.set()

    async def _open(self) -> None:
        """Open the data and start what works on it (at start, and again after a restore)."""
        self.settings.media_dir.mkdir(parents=True, exist_ok=True)
        self.settings.model_folder.mkdir(parents=True, exist_ok=True)
        await self.db.open()
        await self.devices.load()
        await self.keys.load()
        self._tasks.append(asyncio.create_task(self._keep_devices()))
        # Real models' headers are read in milliseconds (SmolLM2's 98 MB file: 30 ms); a folder that takes
        # longer, with many files or files made to be slow, is finished in the background.
        await self.models.start(scan_wait_s=2.0)
        self.residency.start()
        recovered = await self.conversations.recover()
        if recovered:
            log.warning("%d answer(s) were cut off by the last shutdown; kept as interrupted", recovered)
        requeued = await self.transcripts.recover()
        if requeued:
            log.warning("%d transcription(s) were cut off by the last shutdown; transcribing again", requeued)
        await self.attachments.sweep()
        await self.images.sweep()
        await self.knowledge.start()
        await self.remote.start()

    async def ready(self) -> None:
        """Wait until the data is open (at start, or while a restore is put in place)."""
        try:
            async with asyncio.timeout(30):
                await self.started.wait()
        except TimeoutError:
            raise AppError(ErrorCode.BUSY, "gridless is starting or restoring a backup; try again in a moment.",
                           retry_after=5) from None

    async def _keep_devices(self) -> None:
        """Write when paired devices were last seen, and forget those idle too long."""
        while True:
            await asyncio.sleep(30)
            try:
                await self.devices.flush()
                await self.devices.prune()
                await self.keys.flush()
            except Exception:
                log.exception("updating paired devices failed")

    async def stop(self) -> None:
        if self.sharing is not None:
            await self.sharing.stop()
        await asyncio.to_thread(self.backups.stop)
        await self.moves.stop()
        await self._close()
        if self._lock is not None:
            self._lock.release()

    async def restore(self, staged: StagedRestore) -> dict[str, int]:
        """Put a checked backup in place of the data while the server runs, without a restart: answers,
        transcriptions, pictures and engines stop, the database closes, the files are swapped (all or
        nothing: `storage/backup_swap.py`), and everything opens again on the restored data. Requests
        that arrive meanwhile wait for it (`ready`). Returns what the backup held."""
        try:
            self.check_can_restore()
        except AppError:
            staged.discard()
            raise
        async with self._swap:
            self.backups.paused = True
            self.started.clear()
            try:
                await self._close()
                try:
                    return await asyncio.to_thread(apply_staged, staged, self.settings)
                finally:
                    await self._open()
                    self.started.set()
            finally:
                self.backups.paused = False
                staged.discard()  # nothing left to do if it was applied; its files if it never was

    @property
    def restoring(self) -> bool:
        """A restore is being put in place: requests wait for `started`."""
        return self._swap.locked()

    def check_can_restore(self) -> None:
        """Refuse (409) while a restore runs or a backup is being written: a route asks before it reads
        a whole upload."""
        if self._swap.locked() or self.backups.busy():
            raise AppError(ErrorCode.CONFLICT, "A backup is being written or restored; wait for it to finish.")

    async def _close(self) -> None:
        """Stop what works on the data and close it (at shutdown, and before a restore)."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        await self.devices.flush(0)
        await self.keys.flush(0)
        await self.conversations.shutdown()
        await self.remote.stop()
        await self.transcripts.shutdown()
        await self.images.shutdown()
        await self.knowledge.shutdown()
        await self.embeddings.close()
        await self.speech.close()
        await self.voice.close()
        await self.models.stop()
        await self.residency.stop()
        await self.chat.close()
        await self.db.close()
