"""Prompt: the normalized request from the profile, the room's conversation and the new input (a user
message, or tool results for an earlier turn's tool calls). The model and provider options are set per
target by the call stage.

The conversation is read only when the profile keeps one (`context.max_turns` > 0) or the input is tool
results (their exchange is always sent whole). The turn an ok reply appends is prepared here
(`ctx.new_turn`); the outputs stage writes it.
"""

from __future__ import annotations

import asyncio

from agents_tables.conversations import Conversation, Turn
from gateway_app.contract.events import AgentProfile
from gateway_app.contract.profile import AUTO_LANGUAGE
from gateway_app.moderation import language as identifier
from gateway_app.moderation.steering import NOTHING, Steering, penalty_for, steer, temperature
from gateway_app.pipeline import collaboration, conversation, formats, languages
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.providers.base import ChatMessage, ChatRequest


def keeps_context(profile: AgentProfile) -> bool:
    return profile.context is not None and profile.context.max_turns > 0


def build_request(profile: AgentProfile, messages: tuple[ChatMessage, ...], steering: Steering = NOTHING,
                  language_instruction: str | None = None, refine_instruction: str | None = None) -> ChatRequest:
    """The request, steered by the room's active signals (adaptive prompting: instructions in the system
    prompt, a temperature raise within the provider's range, penalties where it has them, a shorter or
    longer answer), asking for the profile's language, with the `consult_agent` tool when the profile
    has collaborators (and, after a collaborator's draft, what to do with it)."""
    reply_format = profile.response_format
    parts = [profile.system_prompt, language_instruction, refine_instruction, *steering.instructions]
    consult = collaboration.consult_tool(profile)
    if reply_format.type == "json":  # also where the provider has a JSON mode (some want it said in words)
        parts.append(formats.json_instruction(reply_format.json_schema))
    penalty = penalty_for(profile.provider, steering.penalty)
    return ChatRequest(
        model=profile.model,
        system_prompt="\n\n".join(p for p in parts if p),
        messages=messages,
        temperature=temperature(profile.provider, profile.temperature, steering.temperature_delta)
        if steering.temperature_delta else profile.temperature,
        max_tokens=max(1, int(profile.max_tokens * steering.max_tokens_factor)),
        frequency_penalty=penalty,
        presence_penalty=penalty,
        stop=tuple(profile.stop),
        tools=tuple({"type": "function", "function": tool.function.model_dump()} for tool in profile.tools)
        + ((consult,) if consult is not None else ()),
        options=profile.options,
        response_format="json" if reply_format.type == "json" else "text",
        json_schema=reply_format.json_schema,
    )


def users_words(content: str, results: object, conv: Conversation | None) -> str:
    """What `language: auto` judges: the user's message; for tool results, the room's last user message."""
    if results is None:
        return content
    return next((turn.user for turn in reversed(conv.turns) if turn.user), "") if conv is not None else ""


class Prompt:
    name = "prompt"

    def __init__(self, services: Services) -> None:
        self.conversations = services.stores.conversations

    async def run(self, ctx: MessageContext) -> None:
        profile, message, results = ctx.require_profile(), ctx.message, ctx.tool_results
        conv = None
        if keeps_context(profile) or results is not None:
            conv = ctx.conversation_row = self.conversations.get(message.agent_id, message.room_id)
            ctx.conversation_read = True
        at_ms = int(message.created_at.timestamp() * 1000) if message.created_at else ctx.origin.received_at_ms
        if results is None:
            new_input = [ChatMessage("user", message.content)]
            ctx.new_turn = Turn(message.message_id, "message", at_ms, 0, user=message.content)
        else:
            outputs = conversation.checked_results(conv, results)  # raises for unknown / answered calls
            new_input = conversation.tool_messages(outputs)
            ctx.new_turn = Turn(message.message_id, "tool_results", at_ms, 0, results=outputs,
                                reply_to=results.reply_to)
        window = conversation.window(conv, profile.context, message.message_id, new_input,
                                     continued=results.reply_to if results else None)
        ctx.window_dropped = window.dropped
        ctx.steering = steer(ctx.signals, profile)
        if profile.language == AUTO_LANGUAGE and not identifier.loaded():
            await asyncio.to_thread(identifier.warm_up)  # once per worker, off the event loop (under a second)
        ctx.reply_language, language_instruction = languages.for_message(profile.language,
                                                                         users_words(message.content, results, conv))
        ctx.request = build_request(profile, window.messages, ctx.steering, language_instruction,
                                    collaboration.refine_instruction(ctx.record))
        ctx.prompt_estimate = conversation.prompt_estimate(ctx.request.system_prompt, window.messages)
        ctx.input_estimate = sum(conversation.raw_estimate(m) for m in new_input)
